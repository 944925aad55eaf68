//! Decoding only the rectangle a sample's views read (libjpeg-turbo's cropping region, at the DCT
//! scale the loader picks) renders exactly the views a whole decode renders — on real photos and on
//! re-encodes of one in every chroma subsampling, progressive and arithmetic-coded, for random
//! MoCo v2 crops.

use loader::augment::{draw, needed_rect, Renderer};
use loader::decode::{pick_dct_scale, scaled_size, Decoder, RegionNeed};
use loader::image::RgbImage;
use rand::SeedableRng;
use turbojpeg::{Image, PixelFormat, Subsamp};

fn images() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    names.sort();
    let mut out: Vec<(String, Vec<u8>)> = names
        .iter()
        .step_by(8)
        .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
        .collect();
    // One photo re-encoded with each subsampling (the iMCU width and the chroma upsampling differ).
    let mut full = RgbImage::default();
    Decoder::new(1 << 28)
        .decode_full(&out[0].1, &mut full)
        .unwrap();
    let rgb = || Image {
        pixels: &full.data[..],
        width: full.width,
        pitch: full.width * 3,
        height: full.height,
        format: PixelFormat::RGB,
    };
    for (name, sub) in [
        ("444", Subsamp::None),
        ("422", Subsamp::Sub2x1),
        ("420", Subsamp::Sub2x2),
        ("440", Subsamp::Sub1x2),
        ("gray", Subsamp::Gray),
    ] {
        let jpeg = turbojpeg::compress(rgb(), 90, sub).unwrap();
        out.push((format!("re-encoded {name}"), jpeg.to_vec()));
    }
    // Progressive (all scans are read whatever the region) and arithmetic-coded.
    for (name, progressive, arithmetic) in
        [("progressive", true, false), ("arithmetic", false, true)]
    {
        let mut c = turbojpeg::Compressor::new().unwrap();
        c.set_quality(90).unwrap();
        c.set_progressive(progressive).unwrap();
        c.set_arithmetic(arithmetic).unwrap();
        out.push((name.to_string(), c.compress_to_vec(rgb()).unwrap()));
    }
    out
}

#[test]
fn partial_decodes_render_the_same_views_as_whole_decodes() {
    let cfg = config::ViewAugment::default();
    let mut dec = Decoder::new(1 << 28);
    let (mut part, mut whole) = (RgbImage::default(), RgbImage::default());
    let mut r = Renderer::new();
    let (mut partial_cases, mut cases) = (0, 0);
    for (name, bytes) in images() {
        let info = dec.probe(&bytes).unwrap();
        let full = (info.width, info.height);
        for trial in 0..12u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(trial);
            let views: Vec<_> = (0..1 + trial as usize % 2)
                .map(|_| draw(&mut rng, &cfg, full.0, full.1))
                .collect();
            let needs: Vec<RegionNeed> = views.iter().map(|v| v.need()).collect();
            // The loader's scale, and full resolution (where the crop is used as is).
            for scale in [pick_dct_scale(&needs), (1, 1)] {
                let scaled = scaled_size(full, scale);
                let want = needed_rect(&needs, full, scaled);
                let placement = dec
                    .decode_part(&bytes, &info, scale, want, &mut part)
                    .unwrap();
                dec.decode(&bytes, &info, scale, &mut whole).unwrap();
                assert_eq!(placement.scaled, (whole.width, whole.height), "{name}");
                cases += 1;
                partial_cases += ((part.width, part.height) != placement.scaled) as usize;
                for (v, p) in views.iter().enumerate() {
                    let mut a = vec![0u8; p.out.0 * p.out.1 * 3];
                    let mut b = a.clone();
                    r.render_placed(&part, &placement, p, &mut a);
                    r.render(&whole, full, p, &mut b);
                    assert!(
                        a == b,
                        "{name}: trial {trial} view {v} at scale {scale:?} (decoded {:?} at {:?})",
                        (part.width, part.height),
                        placement.origin
                    );
                }
            }
        }
    }
    // The test means something only if most decodes were in fact partial.
    assert!(
        partial_cases * 2 > cases,
        "only {partial_cases} of {cases} decodes were partial"
    );
}

/// Whole samples (MoCo v2 two-crop views, CP² composites with their three decodes)
/// through the loader's own image I/O: the same bytes with and without partial decoding.
#[test]
fn samples_are_the_same_with_and_without_partial_decoding() {
    use std::sync::Arc;

    use config::{Cp2Config, DatasetConfig, DatasetLayout, MocoV2Config};
    use loader::source::Dataset;
    use loader::views::{cp2::Cp2, TwoCrop, Views};
    use loader::worker::SkipLog;
    use loader::worker::{ImageIo, SampleInfo};

    let photos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos");
    let ds = Arc::new(
        Dataset::open(&DatasetConfig {
            root: photos,
            layout: DatasetLayout::Flat,
            proposals: None,
            max_images: Some(60),
        })
        .unwrap(),
    );
    let methods: Vec<(&str, Box<dyn Views>)> = vec![
        (
            "mocov2",
            Box::new(TwoCrop::new("mocov2", MocoV2Config::default().view)),
        ),
        ("cp2", Box::new(Cp2::new(Cp2Config::default()))),
    ];
    for (name, views) in &methods {
        let mut outs: Vec<Vec<Vec<u8>>> = Vec::new();
        for partial in [true, false] {
            let mut io = ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 1 << 28, true);
            io.partial_decode = partial;
            let mut all = Vec::new();
            for position in 0..40u64 {
                let info = SampleInfo {
                    seed: 11,
                    epoch: 0,
                    position,
                    index: position as usize % ds.len(),
                    dataset_len: ds.len(),
                };
                let mut sample = proto_shm::SampleBuffers::new(&views.schema(1));
                views.fill(&info, &mut io, &mut sample.tensors()).unwrap();
                all.push(sample.into_vecs().concat());
            }
            outs.push(all);
        }
        for (i, (a, b)) in outs[0].iter().zip(&outs[1]).enumerate() {
            assert!(a == b, "{name}: sample {i} differs with partial decoding");
        }
    }
}
