//! Gaussian blur as Pillow's `ImageFilter.GaussianBlur(radius)` computes it (what MoCo, DenseCL,
//! SoCo and CP² call): three passes of an "extended" box blur per axis, whose fractional radius is
//! chosen so the three passes have the Gaussian's variance (Gwosdek et al. 2011), in 24-bit fixed
//! point with edge pixels repeated.

/// Pillow's `_gaussian_blur_radius`: the box radius whose `passes` repetitions match σ².
fn box_radius(sigma: f32, passes: u32) -> f32 {
    let sigma2 = sigma * sigma / passes as f32;
    // Mixed float/double arithmetic as in Pillow's C.
    let big_l = ((12.0f64 * sigma2 as f64 + 1.0).sqrt()) as f32;
    let l = ((big_l as f64 - 1.0) / 2.0).floor() as f32;
    let mut a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

#[allow(clippy::needless_range_loop)] // channel index addresses both `acc` and the pixels
/// Blurs one line of `n` RGB pixels from `src` into `dst` with a box of fractional radius.
fn line_box_blur(dst: &mut [u8], src: &[u8], n: usize, radius: usize, ww: u32, fw: u32) {
    let last = n - 1;
    let edge_a = (radius + 1).min(n);
    let edge_b = n.saturating_sub(radius + 1);
    let px = |i: usize, c: usize| src[i * 3 + c] as u32;
    let mut acc = [0u32; 3];
    for c in 0..3 {
        acc[c] = px(0, c) * (radius as u32 + 1);
        for x in 0..edge_a.saturating_sub(1) {
            acc[c] += px(x, c);
        }
        acc[c] += px(last, c) * (radius + 1 - edge_a) as u32;
    }
    let mut emit =
        |x: usize, sub: usize, add: usize, left: usize, right: usize, acc: &mut [u32; 3]| {
            for c in 0..3 {
                acc[c] = acc[c].wrapping_add(px(add, c)).wrapping_sub(px(sub, c));
                let bulk = acc[c]
                    .wrapping_mul(ww)
                    .wrapping_add((px(left, c) + px(right, c)).wrapping_mul(fw));
                dst[x * 3 + c] = ((bulk.wrapping_add(1 << 23)) >> 24) as u8;
            }
        };
    if edge_a <= edge_b {
        for x in 0..edge_a {
            emit(x, 0, x + radius, 0, x + radius + 1, &mut acc);
        }
        for x in edge_a..edge_b {
            emit(
                x,
                x - radius - 1,
                x + radius,
                x - radius - 1,
                x + radius + 1,
                &mut acc,
            );
        }
        for x in edge_b..=last {
            emit(x, x - radius - 1, last, x - radius - 1, last, &mut acc);
        }
    } else {
        for x in 0..edge_b {
            emit(x, 0, x + radius, 0, x + radius + 1, &mut acc);
        }
        for x in edge_b..edge_a {
            emit(x, 0, last, 0, last, &mut acc);
        }
        for x in edge_a..=last {
            emit(x, x - radius - 1, last, x - radius - 1, last, &mut acc);
        }
    }
}

/// Reusable buffers of the blur (one per worker).
#[derive(Debug, Default)]
pub struct Blur {
    line: Vec<u8>,
    transposed: Vec<u8>,
}

impl Blur {
    pub fn new() -> Self {
        Self::default()
    }

    /// Blurs a packed RGB image in place with Pillow's GaussianBlur(radius = `sigma`).
    pub fn gaussian(&mut self, data: &mut [u8], width: usize, height: usize, sigma: f32) {
        let r = box_radius(sigma, 3);
        if r == 0.0 || width == 0 || height == 0 {
            return;
        }
        let radius = r as usize;
        let ww = ((1u32 << 24) as f32 / (r * 2.0 + 1.0)) as u32;
        let fw = ((1u32 << 24) - (radius as u32 * 2 + 1) * ww) / 2;
        // Horizontal: three passes along rows.
        self.line.resize(width.max(height) * 3, 0);
        for row in data.chunks_exact_mut(width * 3) {
            for _ in 0..3 {
                self.line[..width * 3].copy_from_slice(row);
                line_box_blur(row, &self.line[..width * 3], width, radius, ww, fw);
            }
        }
        // Vertical: transpose, blur rows, transpose back (as Pillow does).
        self.transposed.resize(width * height * 3, 0);
        transpose(data, &mut self.transposed, width, height);
        for col in self.transposed.chunks_exact_mut(height * 3) {
            for _ in 0..3 {
                self.line[..height * 3].copy_from_slice(col);
                line_box_blur(col, &self.line[..height * 3], height, radius, ww, fw);
            }
        }
        transpose(&self.transposed, data, height, width);
    }
}

/// `dst` (height × width) = transpose of `src` (width × height), RGB pixels.
fn transpose(src: &[u8], dst: &mut [u8], width: usize, height: usize) {
    const TILE: usize = 32;
    for y0 in (0..height).step_by(TILE) {
        for x0 in (0..width).step_by(TILE) {
            for y in y0..(y0 + TILE).min(height) {
                for x in x0..(x0 + TILE).min(width) {
                    let s = (y * width + x) * 3;
                    let d = (x * height + y) * 3;
                    dst[d..d + 3].copy_from_slice(&src[s..s + 3]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_image_stays_flat() {
        let mut d = vec![77u8; 20 * 10 * 3];
        Blur::new().gaussian(&mut d, 20, 10, 1.7);
        assert!(d.iter().all(|&v| v == 77));
    }

    #[test]
    fn blur_preserves_mass_roughly_and_spreads_a_dot() {
        let (w, h) = (31, 31);
        let mut d = vec![0u8; w * h * 3];
        let c = (15 * w + 15) * 3;
        d[c..c + 3].fill(255);
        Blur::new().gaussian(&mut d, w, h, 2.0);
        let centre = d[c] as i32;
        let near = d[c + 3] as i32;
        let far = d[(15 * w + 25) * 3] as i32;
        assert!(centre > near && near > far, "{centre} {near} {far}");
        let total: i32 = d.iter().step_by(3).map(|&v| v as i32).sum();
        assert!((total - 255).abs() < 40, "{total}");
    }
}
