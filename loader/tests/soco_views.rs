//! SoCo view geometry against the pixels themselves: synthetic images with flat-coloured
//! rectangles whose proposals are exactly those rectangles; after the whole view pipeline (crops,
//! resizes, flips; colour ops, jitter and cutout off) every box the ring carries must sit on the
//! pixels of its rectangle's colour, within 1 view pixel, in every view — which also proves that
//! equal ids in the two views of a pair are the same object.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use config::{ColorJitter, DatasetConfig, DatasetLayout, SocoConfig, ViewAugment};
use loader::proposals::{ImageProposals, ProposalStore, StoreWriter};
use loader::source::Dataset;
use loader::views::soco::{Proposals, Soco, WHOLE_VIEW_ID};
use loader::views::Views;
use loader::worker::{ImageIo, SampleInfo, SkipLog};

const GREY: [u8; 3] = [128, 128, 128];
const COLOURS: [[u8; 3]; 3] = [[230, 20, 20], [20, 230, 20], [20, 20, 230]];

/// A scratch folder removed when the test ends.
fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("soco-views-{tag}-"))
        .tempdir()
        .unwrap()
}

/// Images of various sizes with three non-overlapping rectangles `[x, y, w, h]` painted in
/// `COLOURS` (inclusive pixels `x..=x+w−1`, SoCo's box convention); their store.
fn make_dataset(dir: &Path) -> PathBuf {
    let images = [
        (
            1000u32,
            750u32,
            [
                [60, 80, 300, 260],
                [420, 120, 200, 420],
                [660, 400, 280, 300],
            ],
        ),
        (
            800,
            900,
            [
                [40, 40, 360, 300],
                [480, 100, 260, 500],
                [100, 500, 300, 340],
            ],
        ),
        (
            1200,
            700,
            [
                [100, 60, 500, 300],
                [700, 200, 400, 420],
                [150, 420, 420, 240],
            ],
        ),
    ];
    let mut items = Vec::new();
    for (i, (w, h, rects)) in images.iter().enumerate() {
        // The store keeps boxes sorted; proposal ids follow that order, so colours do too.
        let mut rects = rects.to_vec();
        rects.sort();
        let mut img = image::RgbImage::from_pixel(*w, *h, image::Rgb(GREY));
        for (r, c) in rects.iter().zip(COLOURS) {
            for y in r[1]..r[1] + r[3] {
                for x in r[0]..r[0] + r[2] {
                    img.put_pixel(x, y, image::Rgb(c));
                }
            }
        }
        let name = format!("img{i}.png");
        img.save(dir.join(&name)).unwrap();
        items.push(ImageProposals {
            key: name,
            width: *w,
            height: *h,
            rule: 0,
            boxes: rects,
        });
    }
    let store = dir.join("boxes.pstore");
    let mut wr = StoreWriter::open(&store).unwrap();
    wr.append_block(&items).unwrap();
    wr.finish().unwrap();
    store
}

fn geometry_only(size: usize) -> ViewAugment {
    ViewAugment {
        size,
        color_jitter: ColorJitter {
            p: 0.0,
            ..ViewAugment::default().color_jitter
        },
        grayscale_p: 0.0,
        blur_p: 0.0,
        solarize_p: 0.0,
        flip_p: 0.5,
        ..ViewAugment::default()
    }
}

fn dist(a: &[u8], b: [u8; 3]) -> i32 {
    (0..3).map(|c| (a[c] as i32 - b[c] as i32).abs()).sum()
}

/// Extent `[first, last + 1)` of the run of `colour` pixels through `at` along a row (`horizontal`)
/// or a column of a `size`² view, a pixel counting when it is nearer the colour than the grey.
fn extent(
    view: &[u8],
    size: usize,
    colour: [u8; 3],
    at: usize,
    horizontal: bool,
) -> Option<(f64, f64)> {
    let px = |t: usize| {
        let (x, y) = if horizontal { (t, at) } else { (at, t) };
        &view[(y * size + x) * 3..(y * size + x) * 3 + 3]
    };
    let is = |t: usize| dist(px(t), colour) < dist(px(t), GREY);
    let first = (0..size).find(|&t| is(t))?;
    let last = (0..size).rev().find(|&t| is(t))?;
    Some((first as f64, last as f64 + 1.0))
}

fn flat_dataset(root: &Path, max_images: Option<usize>) -> Arc<Dataset> {
    Arc::new(
        Dataset::open(&DatasetConfig {
            root: root.to_path_buf(),
            layout: DatasetLayout::Flat,
            proposals: None,
            max_images,
        })
        .unwrap(),
    )
}

/// One sample's tensors, in schema order.
fn fill(soco: &Soco, io: &mut ImageIo, info: &SampleInfo) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut sample = proto_shm::SampleBuffers::new(&soco.schema(1));
    soco.fill(info, io, &mut sample.tensors())?;
    Ok(sample.into_vecs())
}

fn run(star: bool) {
    let scratch = tempdir(if star { "star" } else { "plain" });
    let dir = scratch.path();
    let store = make_dataset(dir);
    let ds = flat_dataset(dir, None);
    let cfg = SocoConfig {
        star,
        v3_size: if star { 192 } else { 112 },
        box_jitter_p: 0.0,
        cutout_p: 0.0,
        view1_color: geometry_only(224),
        view2_color: geometry_only(224),
        ..SocoConfig::default()
    };
    let soco = Soco::new(
        cfg.clone(),
        Proposals::Store(ProposalStore::open(&store).unwrap()),
    );
    let nviews = if star { 4 } else { 3 };
    let sizes = [224, 224, cfg.v3_size, cfg.v4_size];
    // Which view each box set lives in, and its partner set.
    let set_view = [0usize, 1, 0, 2, 3];
    let partner = [1usize, 0, 3, 2, 0];
    let nsets = nviews + 1;
    let k = cfg.boxes_per_view;
    let mut io = ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 1 << 28, true);
    let (mut checked, mut flipped, mut whole) = (0, 0, 0);
    for position in 0..60u64 {
        let info = SampleInfo {
            seed: 21,
            epoch: 0,
            position,
            index: position as usize % ds.len(),
            dataset_len: ds.len(),
        };
        let bufs = fill(&soco, &mut io, &info).unwrap();
        let f32s: Vec<f32> = bufs[nviews]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let ids: Vec<i32> = bufs[nviews + 1]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let levels = &bufs[nviews + 2];
        for s in 0..nsets {
            let set_ids = &ids[s * k..s * k + k];
            let other = &ids[partner[s] * k..partner[s] * k + k];
            // Padding only repeats ids the partner set also holds (when there is one).
            let shared = set_ids.iter().any(|i| other.contains(i));
            for (a, id) in set_ids.iter().enumerate() {
                if set_ids[..a].contains(id) && shared {
                    assert!(
                        other.contains(id),
                        "position {position} set {s}: padded id {id} has no partner"
                    );
                }
            }
            let v = set_view[s];
            let size = sizes[v];
            for slot in 0..k {
                let b = &f32s[(s * k + slot) * 4..(s * k + slot) * 4 + 4];
                let id = set_ids[slot];
                assert!(b.iter().all(|c| (-1e-6..=1.0 + 1e-6).contains(c)), "{b:?}");
                assert!(b[0] < b[2] && b[1] < b[3], "{b:?}");
                let side = (((b[2] - b[0]) * size as f32 + 1.0)
                    * ((b[3] - b[1]) * size as f32 + 1.0))
                    .sqrt();
                let want_level = if side <= 48.0 {
                    0
                } else if side <= 96.0 {
                    1
                } else if side <= 192.0 {
                    2
                } else {
                    3
                };
                assert_eq!(
                    levels[s * k + slot],
                    want_level,
                    "level of {b:?} in a {size}² view"
                );
                if id == WHOLE_VIEW_ID {
                    assert!(
                        other.contains(&WHOLE_VIEW_ID),
                        "whole-view fallbacks come in pairs"
                    );
                    whole += 1;
                    continue;
                }
                let colour = COLOURS[id as usize - 1];
                let px: Vec<f64> = b.iter().map(|c| *c as f64 * size as f64).collect();
                let view = &bufs[v];
                let (cy, cx) = (
                    ((px[1] + px[3]) / 2.0) as usize,
                    ((px[0] + px[2]) / 2.0) as usize,
                );
                let (x0, x1) = extent_through(view, size, colour, cy, true);
                let (y0, y1) = extent_through(view, size, colour, cx, false);
                let ok = |got: f64, want: f64| (got - want).abs() <= 1.0;
                assert!(
                    ok(x0, px[0]) && ok(x1, px[2]) && ok(y0, px[1]) && ok(y1, px[3]),
                    "position {position} set {s} id {id}: box {px:?} but the colour spans x {x0}..{x1}, y {y0}..{y1}"
                );
                flipped += (x0 > 0.0 && b[0] > 0.5) as usize;
                checked += 1;
            }
        }
    }
    assert!(checked > 60 * nsets * 2, "only {checked} boxes checked");
    assert!(flipped > 0);
    println!("checked {checked} boxes ({whole} whole-view fallbacks)");
}

fn extent_through(
    view: &[u8],
    size: usize,
    colour: [u8; 3],
    at: usize,
    horizontal: bool,
) -> (f64, f64) {
    extent(view, size, colour, at.min(size - 1), horizontal).unwrap_or((f64::NAN, f64::NAN))
}

#[test]
fn boxes_land_on_their_pixels_in_every_view() {
    run(false);
}

#[test]
fn soco_star_boxes_land_on_their_pixels_in_every_view() {
    run(true);
}

/// Without a store the loader runs selective search itself (the slow path): real photos give real
/// proposal ids, and cutout (p = 1) paints the mean colour inside V2's boxes.
#[test]
fn on_the_fly_proposals_and_cutout_on_real_photos() {
    let photos = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/photos");
    let ds = flat_dataset(&photos, Some(6));
    let cfg = SocoConfig {
        cutout_p: 1.0,
        ..SocoConfig::default()
    };
    let soco = Soco::open(cfg.clone(), None).unwrap();
    let mut io = ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 1 << 28, true);
    let mut real = 0;
    for position in 0..6u64 {
        let info = SampleInfo {
            seed: 2,
            epoch: 0,
            position,
            index: position as usize,
            dataset_len: ds.len(),
        };
        let bufs = fill(&soco, &mut io, &info).unwrap();
        let ids: Vec<i32> = bufs[4]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        real += ids.iter().filter(|&&i| i > 1).count();
        let mean_pixels = bufs[1]
            .chunks_exact(3)
            .filter(|p| *p == [124, 116, 104])
            .count();
        assert!(
            mean_pixels > 100,
            "position {position}: cutout painted {mean_pixels} pixels"
        );
    }
    assert!(
        real > 0,
        "selective search found no proposals on six photos"
    );
}

/// A store made for other images (sizes differ) is an error naming the image, not silent garbage;
/// a missing store is an error naming the file.
#[test]
fn foreign_or_missing_store_is_a_clear_error() {
    let scratch = tempdir("foreign");
    let dir = scratch.path();
    make_dataset(dir);
    let foreign = dir.join("foreign.pstore");
    let mut w = StoreWriter::open(&foreign).unwrap();
    w.append_block(&[ImageProposals {
        key: "img0.png".into(),
        width: 640,
        height: 480,
        rule: 0,
        boxes: vec![[10, 10, 100, 100]],
    }])
    .unwrap();
    w.finish().unwrap();
    let ds = flat_dataset(dir, None);
    let soco = Soco::open(SocoConfig::default(), Some(&foreign)).unwrap();
    let mut io = ImageIo::new(ds.clone(), Arc::new(SkipLog::default()), 1 << 28, true);
    let info = SampleInfo {
        seed: 0,
        epoch: 0,
        position: 0,
        index: 0,
        dataset_len: ds.len(),
    };
    let err = format!("{:#}", fill(&soco, &mut io, &info).unwrap_err());
    assert!(
        err.contains("img0.png")
            && err.contains("640x480")
            && err.contains("1000x750")
            && !err.contains('\n'),
        "{err}"
    );
    let missing = dir.join("nope.pstore");
    let err = format!(
        "{:#}",
        Soco::open(SocoConfig::default(), Some(&missing))
            .err()
            .unwrap()
    );
    assert!(err.contains("nope.pstore"), "{err}");
}
