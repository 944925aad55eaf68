//! Segmentation samples (mmseg's train pipeline, whole-image validation), checked independently:
//! on synthetic images whose colour encodes the class, every label pixel of every training sample
//! (after rescale, crop, flip and pad) agrees with its image pixel; cat_max_ratio holds over 10⁴
//! crop draws (and fails often without the redraws); validation labels and images are the files'
//! own bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use config::{DatasetConfig, DatasetLayout, RunConfig, SegFormat, SegPhase, SegmentationConfig};
use loader::ops::crop::CropBox;
use loader::segsource::LabelMap;
use loader::source::Dataset;
use loader::views::segmentation::{draw_window, Segmentation};
use loader::views::Views;
use loader::worker::{ImageIo, SampleInfo, SkipLog};
use proto_shm::schemas::names;
use rand::{Rng, SeedableRng};

/// Four colours (a regular tetrahedron in the RGB cube) whose blends can be unmixed exactly: a
/// resampled pixel's colour gives the weight of each class in it.
const PALETTE: [[u8; 3]; 4] = [[0, 0, 0], [255, 255, 0], [255, 0, 255], [0, 255, 255]];

/// The weight of each class in a blend of the palette's colours (barycentric coordinates).
fn class_weights([r, g, b]: [u8; 3]) -> [f64; 4] {
    let (r, g, b) = (r as f64 / 255.0, g as f64 / 255.0, b as f64 / 255.0);
    let w1 = (r + g - b) / 2.0;
    let w2 = (r + b - g) / 2.0;
    let w3 = (g + b - r) / 2.0;
    [1.0 - w1 - w2 - w3, w1, w2, w3]
}

fn run_config(root: &Path, split: &str, seg: SegmentationConfig) -> RunConfig {
    let mut run = RunConfig::from_str(
        "RunConfig(name: \"t\", dataset: (root: \"x\"), method: MocoV2())",
        "test",
    )
    .unwrap();
    run.dataset = DatasetConfig {
        root: root.to_path_buf(),
        layout: DatasetLayout::Segmentation {
            format: SegFormat::Voc {
                label_dir: "SegmentationClass".into(),
            },
            split: split.into(),
        },
        proposals: None,
        max_images: None,
    };
    run.method = config::MethodConfig::Segmentation(seg);
    run
}

/// A VOC-layout dataset of `n` block images, lossless (PNG bytes under `.jpg` names: the decoder
/// goes by the signature).
fn synthetic_voc(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("JPEGImages")).unwrap();
    std::fs::create_dir_all(dir.join("SegmentationClass")).unwrap();
    std::fs::create_dir_all(dir.join("ImageSets/Segmentation")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut list = String::new();
    for i in 0..n {
        let (w, h) = (rng.random_range(90..260u32), rng.random_range(70..200u32));
        let block = rng.random_range(12..30u32);
        let cols = w.div_ceil(block) as usize;
        let classes: Vec<u8> = (0..cols * h.div_ceil(block) as usize)
            .map(|_| rng.random_range(0..4u8))
            .collect();
        let class_at = |x: u32, y: u32| classes[(y / block) as usize * cols + (x / block) as usize];
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb(PALETTE[class_at(x, y) as usize]));
        let lab = image::GrayImage::from_fn(w, h, |x, y| image::Luma([class_at(x, y)]));
        let stem = format!("img{i:03}");
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        std::fs::write(dir.join(format!("JPEGImages/{stem}.jpg")), bytes).unwrap();
        lab.save(dir.join(format!("SegmentationClass/{stem}.png")))
            .unwrap();
        list.push_str(&stem);
        list.push('\n');
    }
    std::fs::write(dir.join("ImageSets/Segmentation/train.txt"), &list).unwrap();
}

fn io_for(run: &RunConfig) -> ImageIo {
    let ds = Arc::new(Dataset::open(&run.dataset).unwrap());
    ImageIo::new(ds, Arc::new(SkipLog::default()), 1 << 28, false)
}

#[test]
fn every_training_label_pixel_agrees_with_its_image_pixel() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_voc(tmp.path(), 12);
    let seg = SegmentationConfig {
        classes: 4,
        crop: (96, 128),
        scale: (256, 128),
        photometric: false, // colours must stay the palette's
        ..Default::default()
    };
    let run = run_config(tmp.path(), "train", seg);
    let views = Segmentation::open(
        &run,
        match &run.method {
            config::MethodConfig::Segmentation(s) => s.clone(),
            _ => unreachable!(),
        },
    )
    .unwrap();
    let mut io = io_for(&run);
    let schema = views.schema(1);
    let (mut padded_seen, mut pixels) = (0, 0usize);
    for position in 0..60u64 {
        let info = SampleInfo {
            seed: 3,
            epoch: 0,
            position,
            index: position as usize % 12,
            dataset_len: 12,
        };
        let mut sample = proto_shm::SampleBuffers::new(&schema);
        views.fill(&info, &mut io, &mut sample.tensors()).unwrap();
        let (img, lab, ext) = (
            sample.get(names::VIEW0).to_vec(),
            sample.get(names::SEG_LABEL).to_vec(),
            sample.get(names::EXTENT).to_vec(),
        );
        let eh = i32::from_le_bytes(ext[..4].try_into().unwrap()) as usize;
        let ew = i32::from_le_bytes(ext[4..].try_into().unwrap()) as usize;
        assert!((1..=96).contains(&eh) && (1..=128).contains(&ew));
        padded_seen += (eh < 96 || ew < 128) as usize;
        for y in 0..96 {
            for x in 0..128 {
                let i = y * 128 + x;
                let px = [img[i * 3], img[i * 3 + 1], img[i * 3 + 2]];
                if y >= eh || x >= ew {
                    assert_eq!((px, lab[i]), ([0, 0, 0], 255), "padding at ({x}, {y})");
                    continue;
                }
                let c = lab[i];
                assert!(c < 4, "label {c} at ({x}, {y}) of sample {position}");
                // The label is the class under the pixel's centre: inside a block the pixel is
                // that class's colour; at an edge or corner the class still holds a large part of
                // the blend (at least the quadrant it fills), never a sliver or nothing.
                let weights = class_weights(px);
                assert!(
                    weights[c as usize] >= 0.2,
                    "sample {position} ({x}, {y}): pixel {px:?} holds {:.2} of class {c}",
                    weights[c as usize]
                );
                pixels += 1;
            }
        }
    }
    assert!(pixels > 60 * 1000, "too few real pixels checked: {pixels}");
    assert!(
        padded_seen > 0,
        "no sample needed padding: the test misses that path"
    );
}

/// An independent share count: the largest class's fraction of the labelled pixels of `w`.
fn largest_share(label: &LabelMap, w: CropBox) -> (usize, f64) {
    let mut counts = [0usize; 256];
    for y in w.y..w.y + w.h {
        for x in w.x..w.x + w.w {
            counts[label.labels[y * label.width + x] as usize] += 1;
        }
    }
    counts[255] = 0;
    let total: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count();
    (present, *counts.iter().max().unwrap() as f64 / total as f64)
}

#[test]
fn cat_max_ratio_holds_over_ten_thousand_draws() {
    // 100 × 50: class 0 on x < 40, then 5-pixel stripes of classes 1 and 2, with an ignore strip.
    let (w, h) = (100, 50);
    let labels = (0..w * h)
        .map(|i| match i % w {
            x if x < 40 => 0,
            x if x >= 96 => 255,
            x => 1 + ((x - 40) / 5 % 2) as u8,
        })
        .collect();
    let label = LabelMap {
        width: w,
        height: h,
        labels,
    };
    let varied = |c: CropBox| {
        let (present, share) = largest_share(&label, c);
        present > 1 && share < 0.75
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut unchecked_fail = 0;
    for _ in 0..10_000 {
        let c = draw_window(
            &mut rng,
            (w, h),
            (30, 30),
            |c| loader::views::segmentation::crop_is_varied(&label, (w, h), c, 0.75),
            true,
        );
        assert_eq!((c.w, c.h), (30, 30));
        assert!(varied(c), "crop {c:?} breaks cat_max_ratio 0.75");
        let c = draw_window(&mut rng, (w, h), (30, 30), |_| true, false);
        unchecked_fail += !varied(c) as usize;
    }
    // Without the redraws about a quarter of the crops break it: the rule does the work.
    assert!(unchecked_fail > 1500, "{unchecked_fail}");
}

fn camvid() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/camvid")
}

#[test]
fn validation_samples_are_the_files_bytes() {
    let seg = SegmentationConfig {
        classes: 11,
        phase: SegPhase::Validate {
            checkpoint: "unused".into(),
        },
        val_slot: (368, 496),
        ..Default::default()
    };
    let mut run = run_config(&camvid(), "val", seg.clone());
    run.dataset.max_images = Some(6);
    let views = Segmentation::open(&run, seg).unwrap();
    let mut io = io_for(&run);
    let schema = views.schema(1);
    for i in 0..6 {
        let info = SampleInfo {
            seed: 0,
            epoch: 0,
            position: i as u64,
            index: i,
            dataset_len: 6,
        };
        let mut sample = proto_shm::SampleBuffers::new(&schema);
        views.fill(&info, &mut io, &mut sample.tensors()).unwrap();
        let pair = &views.dataset().pairs[i];
        let want_label = image::open(&pair.label).unwrap().into_luma8();
        let mut want_image = loader::image::RgbImage::default();
        loader::decode::Decoder::new(1 << 28)
            .decode_full(&std::fs::read(&pair.image).unwrap(), &mut want_image)
            .unwrap();
        let (w, h) = want_label.dimensions();
        let (w, h) = (w as usize, h as usize);
        let ext = sample.get(names::EXTENT);
        assert_eq!(i32::from_le_bytes(ext[..4].try_into().unwrap()) as usize, h);
        assert_eq!(i32::from_le_bytes(ext[4..].try_into().unwrap()) as usize, w);
        let (lab, img) = (sample.get(names::SEG_LABEL), sample.get(names::VIEW0));
        for y in 0..368 {
            for x in 0..496 {
                let (l, p) = (lab[y * 496 + x], &img[(y * 496 + x) * 3..][..3]);
                if y < h && x < w {
                    assert_eq!(l, want_label.get_pixel(x as u32, y as u32)[0]);
                    assert_eq!(p, want_image.pixel(x, y), "image pixel ({x}, {y})");
                } else {
                    assert_eq!((l, p), (255, &[0u8, 0, 0][..]));
                }
            }
        }
    }
    // An image larger than the slot is refused by name.
    let small = SegmentationConfig {
        classes: 11,
        phase: SegPhase::Validate {
            checkpoint: "unused".into(),
        },
        val_slot: (300, 480),
        ..Default::default()
    };
    let views = Segmentation::open(&run, small).unwrap();
    let mut sample = proto_shm::SampleBuffers::new(&views.schema(1));
    let info = SampleInfo {
        seed: 0,
        epoch: 0,
        position: 0,
        index: 0,
        dataset_len: 6,
    };
    let e = views
        .fill(&info, &mut io, &mut sample.tensors())
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("does not fit the validation slot"),
        "{e:#}"
    );
}
