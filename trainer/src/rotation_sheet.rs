//! PLR's prediction sheet (`plr_predictions.png`), drawn from the last batch of a run: each
//! rotated view as the network saw it, its patch grid, and in every patch two arrows pointing to
//! where the patch's "up" went — white for the true rotation, green where the prediction (argmax
//! of the patch's mean logits) agrees, red where it does not.

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Tensor;
use image::{Rgb, RgbImage};

use crate::data::{MEAN, STD};

/// Images drawn at most.
pub const MAX_IMAGES: usize = 8;

/// Per image and patch (row-major), the class with the highest mean logit over the patch's
/// pixels. `logits`: `[n, 4, s, s]` at input resolution.
pub fn patch_predictions(logits: Tensor<4>, grid: usize) -> Result<Vec<u8>> {
    let [n, c, s, _] = logits.dims();
    let v: Vec<f32> = logits
        .into_data()
        .try_to_vec()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let p = s / grid;
    let mut out = Vec::with_capacity(n * grid * grid);
    for i in 0..n {
        for gy in 0..grid {
            for gx in 0..grid {
                let mut sums = vec![0f64; c];
                for (k, sum) in sums.iter_mut().enumerate() {
                    for y in gy * p..(gy + 1) * p {
                        let row = ((i * c + k) * s + y) * s;
                        *sum += v[row + gx * p..row + (gx + 1) * p]
                            .iter()
                            .map(|&x| x as f64)
                            .sum::<f64>();
                    }
                }
                let best = (0..c).max_by(|&a, &b| sums[a].total_cmp(&sums[b])).unwrap();
                out.push(best as u8);
            }
        }
    }
    Ok(out)
}

/// Draws the sheet for `views` (`[n, 3, s, s]`, normalised) with the true and predicted classes
/// per patch; writes `path` atomically.
pub fn draw(
    views: Tensor<4>,
    truth: &[u8],
    predicted: &[u8],
    grid: usize,
    path: &Path,
) -> Result<()> {
    let [n, _, s, _] = views.dims();
    let n = n.min(MAX_IMAGES);
    let v: Vec<f32> = views
        .into_data()
        .try_to_vec()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // Small views are drawn larger, so that arrows stay readable.
    let zoom = (256 / s).max(1);
    let side = s * zoom;
    let gap = 6;
    let mut sheet = RgbImage::from_pixel(
        (n * (side + gap) + gap) as u32,
        (side + 2 * gap) as u32,
        Rgb([32, 32, 32]),
    );
    for i in 0..n {
        let (ox, oy) = (gap + i * (side + gap), gap);
        for y in 0..side {
            for x in 0..side {
                let px = std::array::from_fn(|ch| {
                    let f = v[((i * 3 + ch) * s + y / zoom) * s + x / zoom];
                    ((f * STD[ch] + MEAN[ch]) * 255.0).round().clamp(0.0, 255.0) as u8
                });
                sheet.put_pixel((ox + x) as u32, (oy + y) as u32, Rgb(px));
            }
        }
        let p = side / grid;
        for k in 1..grid {
            for t in 0..side {
                sheet.put_pixel((ox + k * p) as u32, (oy + t) as u32, Rgb([0, 220, 220]));
                sheet.put_pixel((ox + t) as u32, (oy + k * p) as u32, Rgb([0, 220, 220]));
            }
        }
        for cell in 0..grid * grid {
            let (cx, cy) = (
                ox + (cell % grid) * p + p / 2,
                oy + (cell / grid) * p + p / 2,
            );
            let (t, q) = (
                truth[i * grid * grid + cell],
                predicted[i * grid * grid + cell],
            );
            let colour = if t == q {
                Rgb([40, 230, 60])
            } else {
                Rgb([240, 40, 40])
            };
            arrow(
                &mut sheet,
                (cx, cy),
                t,
                p as f64 * 0.38,
                Rgb([255, 255, 255]),
                3,
            );
            arrow(&mut sheet, (cx, cy), q, p as f64 * 0.30, colour, 2);
        }
    }
    let tmp = path.with_extension("png.tmp");
    sheet
        .save_with_format(&tmp, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Where "up" of a patch turned by `k`·90° points (the loader turns counter-clockwise: k = 1
/// sends the top edge to the left).
fn up_direction(k: u8) -> (f64, f64) {
    match k % 4 {
        0 => (0.0, -1.0),
        1 => (-1.0, 0.0),
        2 => (0.0, 1.0),
        _ => (1.0, 0.0),
    }
}

fn arrow(img: &mut RgbImage, from: (usize, usize), k: u8, len: f64, c: Rgb<u8>, width: i64) {
    let (dx, dy) = up_direction(k);
    let (x0, y0) = (from.0 as f64, from.1 as f64);
    let tip = (x0 + dx * len, y0 + dy * len);
    line(img, (x0, y0), tip, c, width);
    // Arrowhead: two strokes back from the tip at ±45°.
    let h = len * 0.4;
    for s in [-1.0, 1.0] {
        let (bx, by) = (-dx - s * dy, -dy + s * dx);
        let norm = (bx * bx + by * by).sqrt();
        line(
            img,
            tip,
            (tip.0 + bx / norm * h, tip.1 + by / norm * h),
            c,
            width,
        );
    }
}

fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: Rgb<u8>, width: i64) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for t in 0..=steps {
        let f = t as f64 / steps as f64;
        let (x, y) = (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
        for oy in -(width / 2)..=(width - 1) / 2 {
            for ox in -(width / 2)..=(width - 1) / 2 {
                let (px, py) = (x.round() as i64 + ox, y.round() as i64 + oy);
                if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                    img.put_pixel(px as u32, py as u32, c);
                }
            }
        }
    }
}
