//! RandomResizedCrop parameters, torchvision's algorithm: up to 10 draws of an area fraction
//! ~U(scale) and a log-uniform aspect ratio, accepted when the box fits; otherwise a centre crop
//! clamped to the ratio range. Python's `round` (half to even) is reproduced.

use rand::Rng;

/// A crop rectangle in source pixels: left x, top y, width w, height h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CropBox {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl CropBox {
    pub fn full(width: usize, height: usize) -> CropBox {
        CropBox {
            x: 0,
            y: 0,
            w: width,
            h: height,
        }
    }
}

/// Draws a RandomResizedCrop box for a `width × height` image.
pub fn random_resized_crop(
    rng: &mut impl Rng,
    width: usize,
    height: usize,
    scale: (f32, f32),
    ratio: (f32, f32),
) -> CropBox {
    let area = (width * height) as f64;
    let (log_lo, log_hi) = ((ratio.0 as f64).ln(), (ratio.1 as f64).ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0 as f64, scale.1 as f64);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let y = rng.random_range(0..=height - h);
            let x = rng.random_range(0..=width - w);
            return CropBox { x, y, w, h };
        }
    }
    center_crop_in_ratio(width, height, ratio)
}

/// torchvision's fallback: the largest centred box whose aspect lies within `ratio`.
pub fn center_crop_in_ratio(width: usize, height: usize, ratio: (f32, f32)) -> CropBox {
    let in_ratio = width as f64 / height as f64;
    let (lo, hi) = (ratio.0.min(ratio.1) as f64, ratio.0.max(ratio.1) as f64);
    let (w, h) = if in_ratio < lo {
        (
            width,
            ((width as f64 / lo).round_ties_even() as usize).max(1),
        )
    } else if in_ratio > hi {
        (
            ((height as f64 * hi).round_ties_even() as usize).max(1),
            height,
        )
    } else {
        (width, height)
    };
    CropBox {
        x: (width - w) / 2,
        y: (height - h) / 2,
        w,
        h,
    }
}

/// U[lo, hi) like `torch.empty(1).uniform_(lo, hi)`; exactly `lo` when the range is empty.
pub fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        lo + (hi - lo) * rng.random::<f64>()
    } else {
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn boxes_fit_and_respect_ranges() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20_000 {
            let (w, h) = (rng.random_range(1..600), rng.random_range(1..600));
            let b = random_resized_crop(&mut rng, w, h, (0.2, 1.0), (0.75, 4.0 / 3.0));
            assert!(
                b.w >= 1 && b.h >= 1 && b.x + b.w <= w && b.y + b.h <= h,
                "{b:?} in {w}x{h}"
            );
        }
    }

    #[test]
    fn accepted_boxes_have_the_drawn_area_and_ratio() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for _ in 0..5_000 {
            let b = random_resized_crop(&mut rng, 500, 400, (0.2, 1.0), (0.75, 4.0 / 3.0));
            if b == center_crop_in_ratio(500, 400, (0.75, 4.0 / 3.0)) {
                continue;
            }
            let frac = (b.w * b.h) as f64 / 200_000.0;
            assert!((0.19..=1.01).contains(&frac), "{frac}");
            let r = b.w as f64 / b.h as f64;
            assert!((0.74..=1.35).contains(&r), "{r}");
        }
    }

    #[test]
    fn fallback_is_torchvisions_center_crop() {
        // 1000×100 is far wider than 4/3: h = 100, w = round(100 · 4/3) = 133, centred.
        assert_eq!(
            center_crop_in_ratio(1000, 100, (0.75, 4.0 / 3.0)),
            CropBox {
                x: 433,
                y: 0,
                w: 133,
                h: 100
            }
        );
        // 100×1000 is far taller than 3/4: w = 100, h = round(100 / 0.75) = 133.
        assert_eq!(
            center_crop_in_ratio(100, 1000, (0.75, 4.0 / 3.0)),
            CropBox {
                x: 0,
                y: 433,
                w: 100,
                h: 133
            }
        );
        assert_eq!(
            center_crop_in_ratio(400, 400, (0.75, 4.0 / 3.0)),
            CropBox::full(400, 400)
        );
        // A scale range that can never fit forces the fallback.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let b = random_resized_crop(&mut rng, 1000, 100, (1.0, 1.0), (0.75, 4.0 / 3.0));
        assert_eq!(
            b,
            CropBox {
                x: 433,
                y: 0,
                w: 133,
                h: 100
            }
        );
    }
}
