//! Colour ops with Pillow's arithmetic, as torchvision applies them to PIL images:
//! `ImageEnhance` blends (float, truncated to 8 bits), ITU-R 601 luma `L = (19595 R + 38470 G +
//! 7471 B + 2^15) >> 16`, hue shifts through Pillow's 8-bit HSV, `ImageOps.solarize`.

use rand::seq::SliceRandom;
use rand::Rng;

use super::crop::uniform;

/// Pillow's RGB → L.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `Image.blend(degenerate, image, alpha)`: `deg + alpha·(x − deg)` in f32, truncated to 8 bits.
/// Pillow clips only when extrapolating; Rust's saturating float→u8 cast gives the same result in
/// both cases (values in (−1, 0) truncate to 0 either way), so this is branch-free.
#[inline(always)]
fn blend(deg: f32, x: u8, alpha: f32) -> u8 {
    (deg + alpha * (x as f32 - deg)) as u8
}

/// A 256-entry table of `blend(deg, x, alpha)` for a constant `deg`: exact, and one load per byte.
pub(super) fn blend_lut(deg: f32, alpha: f32) -> [u8; 256] {
    std::array::from_fn(|x| blend(deg, x as u8, alpha))
}

/// `blend(deg, x, alpha)` for every byte: AVX-512, AVX2 or scalar, the same bytes.
fn blend_bytes(data: &mut [u8], deg: f32, alpha: f32) {
    let done = simd_bulk!(
        ["avx512f", "avx512bw", "avx512vbmi"],
        super::color_avx512::blend_bytes(data, deg, alpha)
    )
    .or_else(|| simd_bulk!("avx2", super::color_avx2::blend_bytes(data, deg, alpha)))
    .unwrap_or(0);
    blend_bytes_scalar(&mut data[done..], deg, alpha);
}

pub fn adjust_brightness(data: &mut [u8], factor: f32) {
    blend_bytes(data, 0.0, factor);
}

fn blend_bytes_scalar(data: &mut [u8], deg: f32, alpha: f32) {
    if data.is_empty() {
        return;
    }
    let lut = blend_lut(deg, alpha);
    for v in data.iter_mut() {
        *v = lut[*v as usize];
    }
}

/// Pillow's ImageStat mean of the L image, rounded half up.
pub fn mean_luma(data: &[u8]) -> u8 {
    let n = (data.len() / 3).max(1);
    let (bulk, done) = simd_bulk!(
        ["avx512f", "avx512bw", "avx512vbmi"],
        super::color_avx512::luma_sum(data)
    )
    .or_else(|| simd_bulk!("avx2", super::color_avx2::luma_sum(data)))
    .unwrap_or((0, 0));
    let rest: u64 = data[done..]
        .chunks_exact(3)
        .map(|p| luma(p[0], p[1], p[2]) as u64)
        .sum();
    ((bulk + rest) as f64 / n as f64 + 0.5) as u8
}

pub fn adjust_contrast(data: &mut [u8], factor: f32) {
    let mean = mean_luma(data) as f32;
    blend_bytes(data, mean, factor);
}

pub fn adjust_saturation(data: &mut [u8], factor: f32) {
    let done = simd_bulk!(
        ["avx512f", "avx512bw", "avx512vbmi"],
        super::color_avx512::saturation(data, factor)
    )
    .or_else(|| simd_bulk!("avx2", super::color_avx2::saturation(data, factor)))
    .unwrap_or(0);
    adjust_saturation_scalar(&mut data[done..], factor);
}

/// The scalar saturation blend (the tail after the AVX2 blocks, and their reference in tests).
pub fn adjust_saturation_scalar(data: &mut [u8], factor: f32) {
    for p in data.chunks_exact_mut(3) {
        let l = luma(p[0], p[1], p[2]) as f32;
        p[0] = blend(l, p[0], factor);
        p[1] = blend(l, p[1], factor);
        p[2] = blend(l, p[2], factor);
    }
}

/// Pillow's 8-bit RGB → HSV (`rgb2hsv_row` in libImaging/Convert.c), step for step: `f32` where
/// the C code has `float` operands, `f64` where a `double` literal widens the expression, and the
/// value stored back to a `float` variable rounded to `f32` — the mix is what makes it bit-exact
/// (checked against Pillow for all 2^24 colours, see `tests/reference/make_op_fixtures.py`).
#[inline]
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return (0, 0, maxc);
    }
    let cr = (maxc - minc) as f32;
    let s = cr / maxc as f32;
    let rc = (maxc - r) as f32 / cr;
    let gc = (maxc - g) as f32 / cr;
    let bc = (maxc - b) as f32 / cr;
    let h: f32 = if r == maxc {
        bc - gc
    } else if g == maxc {
        (2.0 + rc as f64 - bc as f64) as f32
    } else {
        (4.0 + gc as f64 - rc as f64) as f32
    };
    // fmod(h / 6 + 1, 1) in double: h ∈ [−1, 5], so x ∈ [5/6, 11/6) and the remainder is x or
    // x − 1, both exact — fmod's result without its library call.
    let x = h as f64 / 6.0 + 1.0;
    let h = (if x >= 1.0 { x - 1.0 } else { x }) as f32;
    let uh = ((h as f64 * 255.0) as i32).clamp(0, 255) as u8;
    let us = ((s as f64 * 255.0) as i32).clamp(0, 255) as u8;
    (uh, us, maxc)
}

/// Pillow's 8-bit HSV → RGB (`hsv2rgb` in Convert.c), with the same `float`/`double` steps; C's
/// `round` is half away from zero, as `f64::round`.
#[inline]
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    if s == 0 {
        return (v, v, v);
    }
    let h6 = h as f64 * 6.0 / 255.0;
    let i = h6.floor() as i32;
    let f = (h6 - i as f64) as f32;
    let fs = (s as f64 / 255.0) as f32;
    let vd = v as f64;
    let c8 = |x: f64| (x.round() as i32).clamp(0, 255) as u8;
    let p = c8(vd * (1.0 - fs as f64));
    let q = c8(vd * (1.0 - (fs * f) as f64));
    let t = c8(vd * (1.0 - fs as f64 * (1.0 - f as f64)));
    match i {
        0 | 6 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// torchvision `adjust_hue` on PIL: shift the 8-bit hue by `uint8(hue_factor · 255)` with wrap.
pub fn adjust_hue(data: &mut [u8], hue_factor: f32) {
    // numpy's float → uint8 cast: truncate toward zero, then wrap modulo 256.
    shift_hue(data, ((hue_factor * 255.0) as i32).rem_euclid(256) as u8);
}

/// Pillow's RGB → HSV, `h += shift` (wrapping), HSV → RGB. Sixteen pixels at a time with AVX-512
/// or AVX2 where the CPU has it (same bytes, see `hue_avx512`, `hue_avx2`).
pub fn shift_hue(data: &mut [u8], shift: u8) {
    let done = simd_bulk!(
        ["avx512f", "avx512bw", "avx512vbmi"],
        super::hue_avx512::adjust_hue_avx512(data, shift)
    )
    .or_else(|| simd_bulk!("avx2", super::hue_avx2::adjust_hue_avx2(data, shift)))
    .unwrap_or(0);
    adjust_hue_scalar(&mut data[done..], shift);
}

/// The scalar hue shift (also the reference the AVX2 path is tested against).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn adjust_hue_scalar(data: &mut [u8], shift: u8) {
    for p in data.chunks_exact_mut(3) {
        let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
        let (r, g, b) = hsv_to_rgb(h.wrapping_add(shift), s, v);
        p[0] = r;
        p[1] = g;
        p[2] = b;
    }
}

/// `img.convert("L")` replicated into three channels.
pub fn grayscale(data: &mut [u8]) {
    let done = simd_bulk!("avx2", super::color_avx2::grayscale(data)).unwrap_or(0);
    grayscale_scalar(&mut data[done..]);
}

pub fn grayscale_scalar(data: &mut [u8]) {
    for p in data.chunks_exact_mut(3) {
        let l = luma(p[0], p[1], p[2]);
        p.fill(l);
    }
}

/// `ImageOps.solarize`: values at or above the threshold are inverted (255 − v = v XOR 255, so
/// the loop is a branch-free compare-and-xor that vectorises).
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
pub fn solarize(data: &mut [u8], threshold: u8) {
    for v in data.iter_mut() {
        *v ^= 0u8.wrapping_sub((*v >= threshold) as u8);
    }
}

/// One draw of torchvision's ColorJitter: the order of the four ops and their factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterParams {
    /// 0 brightness, 1 contrast, 2 saturation, 3 hue.
    pub order: [u8; 4],
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
}

impl JitterParams {
    pub fn draw(rng: &mut impl Rng, cfg: &config::ColorJitter) -> JitterParams {
        let mut order = [0u8, 1, 2, 3];
        order.shuffle(rng);
        let f =
            |rng: &mut _, x: f32| uniform(rng, (1.0 - x).max(0.0) as f64, (1.0 + x) as f64) as f32;
        let brightness = f(rng, cfg.brightness);
        let contrast = f(rng, cfg.contrast);
        let saturation = f(rng, cfg.saturation);
        let hue = uniform(rng, -cfg.hue as f64, cfg.hue as f64) as f32;
        JitterParams {
            order,
            brightness,
            contrast,
            saturation,
            hue,
        }
    }

    pub fn apply(&self, data: &mut [u8]) {
        for op in self.order {
            match op {
                0 => adjust_brightness(data, self.brightness),
                1 => adjust_contrast(data, self.contrast),
                2 => adjust_saturation(data, self.saturation),
                _ => adjust_hue(data, self.hue),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_factors_change_nothing() {
        let orig: Vec<u8> = (0..300).map(|i| (i * 7 % 256) as u8).collect();
        let mut d = orig.clone();
        adjust_brightness(&mut d, 1.0);
        adjust_saturation(&mut d, 1.0);
        adjust_contrast(&mut d, 1.0);
        assert_eq!(d, orig);
    }

    /// The AVX2 and AVX-512 paths give exactly the scalar path's bytes, for every RGB colour and
    /// several shifts.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn hue_simd_equals_scalar_for_every_colour() {
        let all: Vec<u8> = (0..1u32 << 24)
            .flat_map(|c| [(c >> 16) as u8, (c >> 8) as u8, c as u8])
            .collect();
        type Kernel = unsafe fn(&mut [u8], u8) -> usize;
        let mut kernels: Vec<(&str, Kernel)> = Vec::new();
        if std::is_x86_feature_detected!("avx2") {
            kernels.push(("avx2", super::super::hue_avx2::adjust_hue_avx2));
        }
        if std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512vbmi")
        {
            kernels.push(("avx512", super::super::hue_avx512::adjust_hue_avx512));
        }
        // Lengths that end in every kind of remainder: whole multi-block steps, a single 16-pixel
        // block, a few pixels.
        for len in [48 * 3 + 9, 48 * 2, 48 * 5 + 3] {
            let mut want = all[..len].to_vec();
            adjust_hue_scalar(&mut want, 77);
            for &(name, kernel) in &kernels {
                let mut got = all[..len].to_vec();
                // SAFETY: the CPU feature was checked when the kernel was listed.
                let done = unsafe { kernel(&mut got, 77) };
                adjust_hue_scalar(&mut got[done..], 77);
                assert_eq!(got, want, "{name}: {len} bytes");
            }
        }
        for shift in [0u8, 1, 13, 128, 250] {
            let mut want = all.clone();
            adjust_hue_scalar(&mut want, shift);
            for &(name, kernel) in &kernels {
                let mut got = all.clone();
                // SAFETY: the CPU feature was checked when the kernel was listed.
                let done = unsafe { kernel(&mut got, shift) };
                assert_eq!(done, all.len());
                if let Some(i) = (0..all.len()).find(|&i| got[i] != want[i]) {
                    let p = i / 3 * 3;
                    panic!(
                        "{name} shift {shift}: pixel {:?} → {:?}, scalar {:?}",
                        &all[p..p + 3],
                        &got[p..p + 3],
                        &want[p..p + 3]
                    );
                }
            }
        }
    }

    /// The AVX2 blends, luma mean and grayscale give the scalar code's bytes for every colour
    /// (saturation, grayscale) or byte value (brightness, contrast), including extrapolating
    /// factors that clip at both ends.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn blends_and_grayscale_equal_scalar_for_every_colour() {
        let all: Vec<u8> = (0..1u32 << 24)
            .flat_map(|c| [(c >> 16) as u8, (c >> 8) as u8, c as u8])
            .collect();
        type Sat = unsafe fn(&mut [u8], f32) -> usize;
        type Blend = unsafe fn(&mut [u8], f32, f32) -> usize;
        type LumaSum = unsafe fn(&[u8]) -> (u64, usize);
        let mut kernels: Vec<(&str, Sat, Blend, LumaSum)> = Vec::new();
        if std::is_x86_feature_detected!("avx2") {
            kernels.push((
                "avx2",
                super::super::color_avx2::saturation,
                super::super::color_avx2::blend_bytes,
                super::super::color_avx2::luma_sum,
            ));
        }
        if std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512vbmi")
        {
            kernels.push((
                "avx512",
                super::super::color_avx512::saturation,
                super::super::color_avx512::blend_bytes,
                super::super::color_avx512::luma_sum,
            ));
        }
        for factor in [0.0f32, 0.6, 1.0, 1.3712, 2.9] {
            let mut want = all.clone();
            adjust_saturation_scalar(&mut want, factor);
            for &(name, sat, _, _) in &kernels {
                let mut got = all.clone();
                // SAFETY: the CPU feature was checked when the kernel was listed.
                let done = unsafe { sat(&mut got, factor) };
                adjust_saturation_scalar(&mut got[done..], factor);
                assert!(got == want, "{name} saturation {factor}");
            }
        }
        let mut want = all.clone();
        grayscale_scalar(&mut want);
        let mut got = all.clone();
        grayscale(&mut got);
        assert!(got == want, "grayscale");
        let total: u64 = all
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]) as u64)
            .sum();
        // 16,777,216 pixels: the SIMD sums must not overflow their lanes.
        assert_eq!(
            mean_luma(&all),
            (total as f64 / (1u64 << 24) as f64 + 0.5) as u8
        );
        for &(name, _, _, luma_sum) in &kernels {
            // A length whose tail is not whole blocks: the kernel covers a prefix.
            let data = &all[..all.len() - 3 * 7];
            // SAFETY: the CPU feature was checked when the kernel was listed.
            let (sum, done) = unsafe { luma_sum(data) };
            let want: u64 = data[..done]
                .chunks_exact(3)
                .map(|p| luma(p[0], p[1], p[2]) as u64)
                .sum();
            assert_eq!(
                done,
                data.len() - data.len() % 48,
                "{name} luma sum coverage"
            );
            assert_eq!(sum, want, "{name} luma sum");
        }
        let bytes: Vec<u8> = (0..=255).cycle().take(256 * 3 + 7).collect();
        for (deg, alpha) in [
            (0.0f32, 1.37f32),
            (0.0, 0.61),
            (117.0, 1.4),
            (30.0, -0.5),
            (200.0, 3.3),
        ] {
            let mut want = bytes.clone();
            blend_bytes_scalar(&mut want, deg, alpha);
            for &(name, _, blend, _) in &kernels {
                let mut got = bytes.clone();
                // SAFETY: the CPU feature was checked when the kernel was listed.
                let done = unsafe { blend(&mut got, deg, alpha) };
                blend_bytes_scalar(&mut got[done..], deg, alpha);
                assert_eq!(got, want, "{name} blend deg {deg} alpha {alpha}");
            }
        }
    }

    #[test]
    fn solarize_inverts_at_and_above_the_threshold() {
        for t in [0u8, 1, 128, 255] {
            let mut d: Vec<u8> = (0..=255).collect();
            solarize(&mut d, t);
            for (v, &got) in d.iter().enumerate() {
                let want = if v as u8 >= t { 255 - v as u8 } else { v as u8 };
                assert_eq!(got, want, "threshold {t} value {v}");
            }
        }
    }

    #[test]
    fn luma_matches_itu_601() {
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
    }
}
