//! Patch-rotation views: undoing each patch's rotation with the label the ring carries gives back
//! exactly the augmented view rendered independently from the drawn parameters.

use std::path::PathBuf;
use std::sync::Arc;

use config::{DatasetConfig, DatasetLayout, PatchRotationConfig};
use loader::augment::{self, Renderer};
use loader::decode::Decoder;
use loader::image::RgbImage;
use loader::rng::{sample_rng, Stream};
use loader::source::Dataset;
use loader::views::patch_rotation::{rotate_patch, PatchRotation};
use loader::views::Views;
use loader::worker::{ImageIo, SampleInfo, SkipLog};

#[test]
fn unrotating_with_the_labels_restores_the_view() {
    let photos = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos");
    let ds = Arc::new(
        Dataset::open(&DatasetConfig {
            root: photos,
            layout: DatasetLayout::Flat,
            proposals: None,
            max_images: Some(20),
        })
        .unwrap(),
    );
    let mut cfg = PatchRotationConfig::default();
    cfg.view.size = 96;
    cfg.grid = 4;
    let plr = PatchRotation::new(cfg.clone());
    let mut io = ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 1 << 28, false);
    let mut counts = [0usize; 4];
    for position in 0..8u64 {
        let info = SampleInfo {
            seed: 2,
            epoch: 0,
            position,
            index: position as usize * 2,
            dataset_len: ds.len(),
        };
        let schema = plr.schema(1);
        let mut sample = proto_shm::SampleBuffers::new(&schema);
        plr.fill(&info, &mut io, &mut sample.tensors()).unwrap();
        let bufs = sample.into_vecs();
        // Independent render of the un-rotated view.
        let bytes = std::fs::read(ds.path_of(info.index)).unwrap();
        let mut img = RgbImage::default();
        Decoder::new(1 << 28).decode_full(&bytes, &mut img).unwrap();
        let mut rng = sample_rng(info.seed, info.epoch, info.position, Stream::View(0));
        let p = augment::draw(&mut rng, &cfg.view, img.width, img.height);
        let mut want = vec![0u8; 96 * 96 * 3];
        Renderer::new().render(&img, (img.width, img.height), &p, &mut want);
        // Undo each patch's rotation with the label.
        let mut got = bufs[0].clone();
        let mut tmp = Vec::new();
        for (k, &r) in bufs[1].iter().enumerate() {
            assert!(r < 4);
            counts[r as usize] += 1;
            rotate_patch(
                &mut got,
                96,
                (k % 4) * 24,
                (k / 4) * 24,
                24,
                (4 - r) % 4,
                &mut tmp,
            );
        }
        assert_eq!(got, want, "sample {position}");
    }
    assert!(
        counts.iter().all(|&c| c > 10),
        "rotation labels not spread: {counts:?}"
    );
}

/// A 256×256 image whose red and green channels are the pixel's x and y: a view's pixel colour then
/// says which source point it shows, independently of the geometry code under test.
#[test]
fn cell_matches_point_at_the_same_source_pixels() {
    use loader::ops::crop::CropBox;
    use loader::views::patch_moco::cell_matches;
    use rand::{Rng, SeedableRng};
    let n = 256;
    let mut src = RgbImage::new(n, n);
    for y in 0..n {
        for x in 0..n {
            let i = (y * n + x) * 3;
            src.data[i] = x as u8;
            src.data[i + 1] = y as u8;
            src.data[i + 2] = 128;
        }
    }
    let (size, stride) = (128usize, 16usize);
    let g = size / stride;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut r = Renderer::new();
    let (mut matched, mut unmatched) = (0, 0);
    for _ in 0..40 {
        let mut view = |rng: &mut rand_chacha::ChaCha8Rng| {
            let w = rng.random_range(100..=256);
            let h = rng.random_range(100..=256);
            let crop = CropBox {
                x: rng.random_range(0..=n - w),
                y: rng.random_range(0..=n - h),
                w,
                h,
            };
            let cfg = config::ViewAugment {
                size,
                ..config::ViewAugment::default()
            };
            let mut p = augment::draw_with_crop(rng, &cfg, crop);
            (p.jitter, p.grayscale, p.blur_sigma, p.solarize) = (None, false, None, None);
            let mut px = vec![0u8; size * size * 3];
            r.render(&src, (n, n), &p, &mut px);
            (p, px)
        };
        let (a, pa) = view(&mut rng);
        let (b, pb) = view(&mut rng);
        // The source point at a cell centre: mean of the 4 pixels around it, +0.5 for pixel centres.
        let at = |px: &[u8], i: usize, j: usize| -> (f64, f64) {
            let (cy, cx) = (i * stride + stride / 2, j * stride + stride / 2);
            let mut s = (0.0, 0.0);
            for (yy, xx) in [(cy - 1, cx - 1), (cy - 1, cx), (cy, cx - 1), (cy, cx)] {
                let k = (yy * size + xx) * 3;
                s.0 += px[k] as f64 / 4.0;
                s.1 += px[k + 1] as f64 / 4.0;
            }
            (s.0 + 0.5, s.1 + 0.5)
        };
        for (k, &m) in cell_matches(&a, &b, size, stride).iter().enumerate() {
            let (xa, ya) = at(&pa, k / g, k % g);
            if m >= 0 {
                let (xb, yb) = at(&pb, m as usize / g, m as usize % g);
                // Same point up to half a view-1 cell, in source pixels, plus rounding.
                let tol_x = stride as f64 / 2.0 * b.crop.w as f64 / size as f64 + 1.5;
                let tol_y = stride as f64 / 2.0 * b.crop.h as f64 / size as f64 + 1.5;
                assert!(
                    (xa - xb).abs() <= tol_x && (ya - yb).abs() <= tol_y,
                    "cell {k} -> {m}: ({xa}, {ya}) vs ({xb}, {yb})"
                );
                matched += 1;
            } else {
                // Not visible in view 1: the point lies outside its crop.
                let inside = xa > b.crop.x as f64 + 1.0
                    && xa < (b.crop.x + b.crop.w) as f64 - 1.0
                    && ya > b.crop.y as f64 + 1.0
                    && ya < (b.crop.y + b.crop.h) as f64 - 1.0;
                assert!(
                    !inside,
                    "cell {k} unmatched but ({xa}, {ya}) is inside {:?}",
                    b.crop
                );
                unmatched += 1;
            }
        }
    }
    assert!(
        matched > 500 && unmatched > 50,
        "{matched} matched, {unmatched} unmatched"
    );
}
