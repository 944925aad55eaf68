//! Gaussian blur as Pillow's `ImageFilter.GaussianBlur(radius)` computes it (what MoCo, DenseCL,
//! SoCo and CP² call): three passes of an "extended" box blur per axis, whose fractional radius is
//! chosen so the three passes have the Gaussian's variance (Gwosdek et al. 2011), in 24-bit fixed
//! point with edge pixels repeated; horizontal passes first, then vertical, as Pillow orders them.
//!
//! Every pass here runs down the columns of an image with one accumulator per byte of a row, so the
//! inner loops are straight vector code; the horizontal passes run on the transposed image (Pillow
//! transposes for its vertical passes; the arithmetic, and so every output byte, is the same).

use super::transpose::transpose_rgb;
use crate::image::ImageView;

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

/// The box's fixed-point weights: `ww` for whole taps, `fw` for the two fractional end taps.
#[derive(Debug, Clone, Copy)]
struct BoxWeights {
    radius: usize,
    ww: u32,
    fw: u32,
}

impl BoxWeights {
    fn new(r: f32) -> BoxWeights {
        let radius = r as usize;
        let ww = ((1u32 << 24) as f32 / (r * 2.0 + 1.0)) as u32;
        let fw = ((1u32 << 24) - (radius as u32 * 2 + 1) * ww) / 2;
        BoxWeights { radius, ww, fw }
    }
}

#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
/// One box pass along the rows axis: `src` and `dst` hold `n` rows of `row_len` bytes; output row
/// `y` mixes input rows around `y` (Pillow's `ImagingLineBoxBlur`, applied to every column at once).
fn column_pass(
    src: &[u8],
    dst: &mut [u8],
    row_len: usize,
    n: usize,
    w: BoxWeights,
    acc: &mut [u32],
) {
    let BoxWeights { radius, ww, fw } = w;
    let last = n - 1;
    let edge_a = (radius + 1).min(n);
    let edge_b = n.saturating_sub(radius + 1);
    // Accumulator for the "-1" position: the first row repeated radius+1 times, the rows up to
    // edge_a−1, and the last row for what lies beyond the end.
    let (first, lastr) = (&src[..row_len], &src[last * row_len..(last + 1) * row_len]);
    for ((a, &f), &l) in acc.iter_mut().zip(first).zip(lastr) {
        *a = f as u32 * (radius as u32 + 1) + l as u32 * (radius + 1 - edge_a) as u32;
    }
    for x in 0..edge_a.saturating_sub(1) {
        for (a, &v) in acc.iter_mut().zip(&src[x * row_len..(x + 1) * row_len]) {
            *a += v as u32;
        }
    }
    // (output row, row leaving the box, row entering it, left and right fractional rows), in
    // Pillow's three regions; no closures, so the target-feature clones inline everything.
    let plan = |y: usize| -> [usize; 4] {
        if edge_a <= edge_b {
            if y < edge_a {
                [0, y + radius, 0, y + radius + 1]
            } else if y < edge_b {
                [y - radius - 1, y + radius, y - radius - 1, y + radius + 1]
            } else {
                [y - radius - 1, last, y - radius - 1, last]
            }
        } else if y < edge_b {
            [0, y + radius, 0, y + radius + 1]
        } else if y < edge_a {
            [0, last, 0, last]
        } else {
            [y - radius - 1, last, y - radius - 1, last]
        }
    };
    for y in 0..n {
        let [sub, add, left, right] = plan(y);
        let rows = [sub, add, left, right].map(|i| &src[i * row_len..(i + 1) * row_len]);
        emit_row(
            &mut dst[y * row_len..(y + 1) * row_len],
            &mut acc[..row_len],
            rows,
            ww,
            fw,
        );
    }
}

/// One output row: slide the accumulator by one input row and mix in the fractional end rows.
#[inline(always)]
fn emit_row(out: &mut [u8], acc: &mut [u32], [rs, ra, rl, rr]: [&[u8]; 4], ww: u32, fw: u32) {
    // Equal-length zips: no bounds checks, so the loop vectorises.
    for (((((a, o), &s), &p), &l), &r) in acc
        .iter_mut()
        .zip(out.iter_mut())
        .zip(rs)
        .zip(ra)
        .zip(rl)
        .zip(rr)
    {
        let v = a.wrapping_add(p as u32).wrapping_sub(s as u32);
        *a = v;
        let bulk = v
            .wrapping_mul(ww)
            .wrapping_add((l as u32 + r as u32).wrapping_mul(fw));
        *o = (bulk.wrapping_add(1 << 23) >> 24) as u8;
    }
}

/// Reusable buffers of the blur (one per worker).
#[derive(Debug, Default)]
pub struct Blur {
    a: Vec<u8>,
    b: Vec<u8>,
    acc: Vec<u32>,
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
        let w = BoxWeights::new(r);
        let n = width * height * 3;
        self.a.resize(n, 0);
        self.b.resize(n, 0);
        self.acc.resize(width.max(height) * 3, 0);
        let acc = &mut self.acc;
        // Horizontal: on the transpose (rows of `a` are the columns of `data`), three passes.
        transpose(data, &mut self.a, width, height);
        column_pass(
            &self.a,
            &mut self.b,
            height * 3,
            width,
            w,
            &mut acc[..height * 3],
        );
        column_pass(
            &self.b,
            &mut self.a,
            height * 3,
            width,
            w,
            &mut acc[..height * 3],
        );
        column_pass(
            &self.a,
            &mut self.b,
            height * 3,
            width,
            w,
            &mut acc[..height * 3],
        );
        transpose(&self.b, &mut self.a, height, width);
        // Vertical: three passes down the columns of the image.
        column_pass(
            &self.a,
            &mut self.b,
            width * 3,
            height,
            w,
            &mut acc[..width * 3],
        );
        column_pass(
            &self.b,
            &mut self.a,
            width * 3,
            height,
            w,
            &mut acc[..width * 3],
        );
        column_pass(&self.a, data, width * 3, height, w, &mut acc[..width * 3]);
    }
}

/// `dst` (width rows of height pixels) = transpose of `src` (height rows of width pixels), RGB.
fn transpose(src: &[u8], dst: &mut [u8], width: usize, height: usize) {
    let view = ImageView {
        data: src,
        width,
        height,
        stride: width * 3,
    };
    transpose_rgb(view, dst);
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

    #[test]
    fn tiny_images_and_huge_radii_do_not_panic() {
        for (w, h) in [(1, 1), (1, 7), (7, 1), (3, 2)] {
            let mut d: Vec<u8> = (0..w * h * 3).map(|i| (i * 40) as u8).collect();
            Blur::new().gaussian(&mut d, w, h, 5.0);
        }
    }
}
