//! The demo's own data, so the product never depends on files it does not ship: procedurally drawn
//! "scenes" (gradient backgrounds with noise and a few filled circles, squares and triangles of
//! random colours), written as JPEGs — and, for segmentation, with per-pixel class maps in PASCAL
//! VOC layout (0 background, 1 circle, 2 square, 3 triangle, 255 ignore on object borders).

use std::path::Path;

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const CLASSES: [&str; 4] = ["background", "circle", "square", "triangle"];

/// One scene: RGB pixels and class labels.
pub struct Scene {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    pub labels: Vec<u8>,
}

fn inside_triangle(px: f32, py: f32, t: [(f32, f32); 3]) -> bool {
    let sign = |a: (f32, f32), b: (f32, f32), c: (f32, f32)| {
        (a.0 - c.0) * (b.1 - c.1) - (b.0 - c.0) * (a.1 - c.1)
    };
    let p = (px, py);
    let (d1, d2, d3) = (
        sign(p, t[0], t[1]),
        sign(p, t[1], t[2]),
        sign(p, t[2], t[0]),
    );
    let neg = d1 < 0.0 || d2 < 0.0 || d3 < 0.0;
    let pos = d1 > 0.0 || d2 > 0.0 || d3 > 0.0;
    !(neg && pos)
}

/// Draws scene `index` of the stream seeded by `seed`.
pub fn scene(seed: u64, index: u64, width: usize, height: usize) -> Scene {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(index));
    let c0: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
    let c1: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
    let mut rgb = vec![0u8; width * height * 3];
    let mut labels = vec![0u8; width * height];
    for y in 0..height {
        for x in 0..width {
            let t = (x + y) as f32 / (width + height) as f32;
            for c in 0..3 {
                let noise: f32 = rng.random_range(-12.0..12.0);
                rgb[(y * width + x) * 3 + c] =
                    (c0[c] * (1.0 - t) + c1[c] * t + noise).clamp(0.0, 255.0) as u8;
            }
        }
    }
    let objects = rng.random_range(2..=5);
    for _ in 0..objects {
        let class = rng.random_range(1..=3u8);
        let color: [u8; 3] = std::array::from_fn(|_| rng.random_range(0..=255));
        let size = rng.random_range(0.15..0.45) * width.min(height) as f32;
        let cx = rng.random_range(0.0..width as f32);
        let cy = rng.random_range(0.0..height as f32);
        let tri = [
            (cx, cy - size / 2.0),
            (cx - size / 2.0, cy + size / 2.0),
            (cx + size / 2.0, cy + size / 2.0),
        ];
        for y in 0..height {
            for x in 0..width {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let inside = match class {
                    1 => (px - cx).powi(2) + (py - cy).powi(2) <= (size / 2.0).powi(2),
                    2 => (px - cx).abs() <= size / 2.0 && (py - cy).abs() <= size / 2.0,
                    _ => inside_triangle(px, py, tri),
                };
                if inside {
                    let i = y * width + x;
                    rgb[i * 3..i * 3 + 3].copy_from_slice(&color);
                    labels[i] = class;
                }
            }
        }
    }
    // Mark one-pixel borders between different classes as ignore, as VOC does around objects.
    let copy = labels.clone();
    for y in 1..height - 1 {
        for x in 1..width - 1 {
            let l = copy[y * width + x];
            let n = [
                copy[y * width + x - 1],
                copy[y * width + x + 1],
                copy[(y - 1) * width + x],
                copy[(y + 1) * width + x],
            ];
            if n.iter().any(|&m| m != l) {
                labels[y * width + x] = 255;
            }
        }
    }
    Scene {
        width,
        height,
        rgb,
        labels,
    }
}

fn save_jpeg(path: &Path, s: &Scene) -> Result<()> {
    let img =
        image::RgbImage::from_raw(s.width as u32, s.height as u32, s.rgb.clone()).expect("size");
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 90).encode_image(&img)?;
    Ok(())
}

/// `count` scene JPEGs of varied sizes in `dir` (skipped if already there).
pub fn write_images(dir: &Path, count: usize, seed: u64) -> Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xD3E0);
    for i in 0..count {
        let (w, h) = (rng.random_range(160..=320), rng.random_range(160..=320));
        let path = dir.join(format!("scene_{i:05}.jpg"));
        if !path.exists() {
            save_jpeg(&path, &scene(seed, i as u64, w, h))?;
        }
    }
    Ok(count)
}

/// A PASCAL-VOC-layout segmentation set: JPEGImages/, SegmentationClass/ (PNG class maps),
/// ImageSets/Segmentation/{train,val}.txt.
pub fn write_voc(root: &Path, train: usize, val: usize, seed: u64) -> Result<()> {
    let (img_dir, seg_dir, sets) = (
        root.join("JPEGImages"),
        root.join("SegmentationClass"),
        root.join("ImageSets/Segmentation"),
    );
    for d in [&img_dir, &seg_dir, &sets] {
        std::fs::create_dir_all(d)?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5E6);
    let mut names = Vec::new();
    for i in 0..train + val {
        let (w, h) = (rng.random_range(160..=256), rng.random_range(160..=256));
        let name = format!("scene_{i:05}");
        let s = scene(seed.wrapping_add(77), i as u64, w, h);
        save_jpeg(&img_dir.join(format!("{name}.jpg")), &s)?;
        image::GrayImage::from_raw(w as u32, h as u32, s.labels.clone())
            .expect("size")
            .save(seg_dir.join(format!("{name}.png")))?;
        names.push(name);
    }
    std::fs::write(sets.join("train.txt"), names[..train].join("\n") + "\n")?;
    std::fs::write(sets.join("val.txt"), names[train..].join("\n") + "\n")?;
    Ok(())
}
