//! mmseg's `PhotoMetricDistortion` (METHODS.md §2.5) on packed RGB u8, in mmseg's order:
//! brightness, then contrast either first or last (a coin), saturation, hue — each applied with
//! probability ½. Every step works on u8 as mmseg's does (`convert`: `x·α + β`, clip to [0, 255],
//! truncate to u8), and saturation and hue go through an 8-bit HSV image as OpenCV's `bgr2hsv`
//! makes one (H in [0, 180), S and V in [0, 255]), so hue shifts wrap modulo 180.

use rand::Rng;

/// mmseg's defaults: brightness δ 32, contrast and saturation 0.5–1.5, hue δ 18.
pub const BRIGHTNESS_DELTA: f32 = 32.0;
pub const CONTRAST: (f32, f32) = (0.5, 1.5);
pub const SATURATION: (f32, f32) = (0.5, 1.5);
pub const HUE_DELTA: i32 = 18;

/// The draws of one distortion.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Photometric {
    pub brightness: Option<f32>,
    /// Contrast before saturation (mmseg's `mode == 1`) or after hue.
    pub contrast_first: bool,
    pub contrast: Option<f32>,
    pub saturation: Option<f32>,
    pub hue: Option<i32>,
}

fn uniform(rng: &mut impl Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

impl Photometric {
    /// Draws in mmseg's order: brightness coin and δ, mode, contrast (when first), saturation,
    /// hue, contrast (when last).
    pub fn draw(rng: &mut impl Rng) -> Photometric {
        let mut p = Photometric::default();
        if rng.random::<bool>() {
            p.brightness = Some(uniform(rng, -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA));
        }
        p.contrast_first = rng.random::<bool>();
        let contrast = |rng: &mut _| {
            if Rng::random::<bool>(rng) {
                Some(uniform(rng, CONTRAST.0, CONTRAST.1))
            } else {
                None
            }
        };
        if p.contrast_first {
            p.contrast = contrast(rng);
        }
        if rng.random::<bool>() {
            p.saturation = Some(uniform(rng, SATURATION.0, SATURATION.1));
        }
        if rng.random::<bool>() {
            // numpy's randint(-δ, δ): the upper end is excluded.
            p.hue = Some(rng.random_range(-HUE_DELTA..HUE_DELTA));
        }
        if !p.contrast_first {
            p.contrast = contrast(rng);
        }
        p
    }

    /// Applies the distortion to packed RGB pixels in place. Brightness, contrast and the
    /// saturation scale are 256-entry tables (mmseg's `convert` maps each u8 value to one u8).
    pub fn apply(&self, rgb: &mut [u8]) {
        if let Some(b) = self.brightness {
            apply_lut(rgb, &convert_lut(1.0, b));
        }
        if self.contrast_first {
            if let Some(a) = self.contrast {
                apply_lut(rgb, &convert_lut(a, 0.0));
            }
        }
        // mmseg converts to HSV and back once per step: saturation's round trip, then hue's.
        if let Some(s) = self.saturation {
            let lut = convert_lut(s, 0.0);
            hsv_step(rgb, |hsv| hsv[1] = lut[hsv[1] as usize]);
        }
        if let Some(h) = self.hue {
            let mut lut = [0u8; 256];
            for (v, out) in lut.iter_mut().enumerate() {
                *out = ((v as i32 + h).rem_euclid(180)) as u8;
            }
            hsv_step(rgb, |hsv| hsv[0] = lut[hsv[0] as usize]);
        }
        if !self.contrast_first {
            if let Some(a) = self.contrast {
                apply_lut(rgb, &convert_lut(a, 0.0));
            }
        }
    }
}

/// mmseg's `convert` of every u8 value: `v·α + β`, clipped to [0, 255], truncated.
fn convert_lut(alpha: f32, beta: f32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    for (v, out) in lut.iter_mut().enumerate() {
        *out = (v as f32 * alpha + beta).clamp(0.0, 255.0) as u8;
    }
    lut
}

fn apply_lut(rgb: &mut [u8], lut: &[u8; 256]) {
    for v in rgb.iter_mut() {
        *v = lut[*v as usize];
    }
}

fn hsv_step(rgb: &mut [u8], f: impl Fn(&mut [u8; 3])) {
    for px in rgb.chunks_exact_mut(3) {
        let mut hsv = rgb_to_hsv([px[0], px[1], px[2]]);
        f(&mut hsv);
        px.copy_from_slice(&hsv_to_rgb(hsv));
    }
}

const HSV_SHIFT: u32 = 12;

/// OpenCV's fixed-point divisors of `RGB2HSV_b`: 255·2¹²/v and 180·2¹²/(6·d), rounded.
const fn div_table(numerator: i64, scale: i64) -> [i32; 256] {
    let mut t = [0i32; 256];
    let mut i = 1;
    while i < 256 {
        let d = scale * i as i64;
        t[i] = (((numerator << HSV_SHIFT) + d / 2) / d) as i32;
        i += 1;
    }
    t
}
const SDIV: [i32; 256] = div_table(255, 1);
const HDIV: [i32; 256] = div_table(180, 6);

/// OpenCV's 8-bit RGB → HSV, in its fixed point: V = max, S = 255·(V − min)/V, H = hue in
/// degrees / 2 (0–179), rounded.
#[inline]
pub fn rgb_to_hsv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let v = r.max(g).max(b);
    let diff = v - r.min(g).min(b);
    let round = 1 << (HSV_SHIFT - 1);
    let s = (diff * SDIV[v as usize] + round) >> HSV_SHIFT;
    let h = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let mut h = (h * HDIV[diff as usize] + round) >> HSV_SHIFT;
    if h < 0 {
        h += 180;
    }
    [h as u8, s as u8, v as u8]
}

/// OpenCV's 8-bit HSV → RGB (H in [0, 180)): its float sector formula, truncated.
#[inline]
pub fn hsv_to_rgb([h, s, v]: [u8; 3]) -> [u8; 3] {
    if s == 0 {
        return [v, v, v];
    }
    let hh = (h % 180) as f32 * (6.0 / 180.0);
    let sector = hh as u32; // 0..=5: hh is non-negative and below 6
    let f = hh - sector as f32;
    let (s, v) = (s as f32 * (1.0 / 255.0), v as f32);
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    let (r, g, b) = match sector {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    // Truncated, as OpenCV 5's 8-bit path mostly does (tests/reference/hsv.json: every value
    // within one unit of OpenCV's).
    let q8 = |x: f32| x as u8;
    [q8(r), q8(g), q8(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_round_trips_and_matches_hand_values() {
        // Pure colours (OpenCV: red H 0, green H 60, blue H 120 on the 0–180 scale).
        assert_eq!(rgb_to_hsv([255, 0, 0]), [0, 255, 255]);
        assert_eq!(rgb_to_hsv([0, 255, 0]), [60, 255, 255]);
        assert_eq!(rgb_to_hsv([0, 0, 255]), [120, 255, 255]);
        assert_eq!(rgb_to_hsv([128, 128, 128]), [0, 0, 128]);
        for c in [[10u8, 200, 30], [255, 128, 0], [7, 7, 9], [90, 60, 200]] {
            let back = hsv_to_rgb(rgb_to_hsv(c));
            for k in 0..3 {
                assert!(
                    (back[k] as i32 - c[k] as i32).abs() <= 3,
                    "{c:?} → {back:?}"
                );
            }
        }
    }

    #[test]
    fn brightness_and_contrast_clip_and_truncate_like_mmseg() {
        let mut px = vec![10u8, 250, 100];
        Photometric {
            brightness: Some(20.5),
            ..Default::default()
        }
        .apply(&mut px);
        assert_eq!(px, vec![30, 255, 120]); // 30.5 → 30, 270.5 → 255
        let mut px = vec![10u8, 250, 100];
        Photometric {
            contrast: Some(1.5),
            ..Default::default()
        }
        .apply(&mut px);
        assert_eq!(px, vec![15, 255, 150]);
        // Hue by 90 (180°) turns red to cyan.
        let mut px = vec![255u8, 0, 0];
        Photometric {
            hue: Some(90),
            ..Default::default()
        }
        .apply(&mut px);
        assert!(px[0] == 0 && px[1] >= 254 && px[2] == 255, "{px:?}");
    }
}
