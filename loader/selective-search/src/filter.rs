//! SoCo's proposal filter ("ratio3size0308", METHODS.md §3.1) and its two fallbacks for images
//! left without boxes; the last resort is the whole image. Exact duplicate boxes are dropped (the
//! hierarchy repeats a box whenever a merge does not grow it).

use crate::Rect;

/// Which rule produced an image's boxes (counted by `precompute-proposals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// w, h ≥ 32; 1/3 ≤ w/h ≤ 3; 0.3 ≤ √(wh)/√(WH) ≤ 0.8.
    Full,
    /// Fallback 1: w, h ≥ 32 and aspect ≤ 3.
    RatioOnly,
    /// Fallback 2: w, h ≥ 32.
    MinSize,
    /// Nothing passed: the whole image.
    WholeImage,
}

fn dedup(mut v: Vec<Rect>) -> Vec<Rect> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|r| seen.insert(*r));
    v
}

/// SoCo's filtered boxes for an image of `width × height`, and the rule that produced them.
pub fn soco_filter(rects: &[Rect], width: u32, height: u32) -> (Vec<Rect>, Rule) {
    let big = |r: &&Rect| r.w >= 32 && r.h >= 32;
    let ratio = |r: &&Rect| {
        let a = r.w as f64 / r.h as f64;
        (1.0 / 3.0..=3.0).contains(&a)
    };
    let img = ((width as f64) * (height as f64)).sqrt();
    let size = |r: &&Rect| {
        let s = ((r.w as f64) * (r.h as f64)).sqrt() / img;
        (0.3..=0.8).contains(&s)
    };
    let full = dedup(
        rects
            .iter()
            .filter(big)
            .filter(ratio)
            .filter(size)
            .copied()
            .collect(),
    );
    if !full.is_empty() {
        return (full, Rule::Full);
    }
    let ratio_only = dedup(rects.iter().filter(big).filter(ratio).copied().collect());
    if !ratio_only.is_empty() {
        return (ratio_only, Rule::RatioOnly);
    }
    let min_size = dedup(rects.iter().filter(big).copied().collect());
    if !min_size.is_empty() {
        return (min_size, Rule::MinSize);
    }
    (
        vec![Rect {
            x: 0,
            y: 0,
            w: width.saturating_sub(1),
            h: height.saturating_sub(1),
        }],
        Rule::WholeImage,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    #[test]
    fn known_cases() {
        // 400×300 image: √(WH) ≈ 346.4, so sizes √(wh) in [103.9, 277.1] pass.
        let rects = [
            r(0, 0, 150, 150),   // passes
            r(0, 0, 31, 200),    // too narrow
            r(0, 0, 300, 90),    // aspect 3.33
            r(0, 0, 60, 60),     // too small (0.17)
            r(0, 0, 399, 299),   // too large (0.99)
            r(10, 10, 150, 150), // passes
            r(0, 0, 150, 150),   // duplicate
        ];
        let (kept, rule) = soco_filter(&rects, 400, 300);
        assert_eq!(rule, Rule::Full);
        assert_eq!(kept, vec![r(0, 0, 150, 150), r(10, 10, 150, 150)]);
    }

    #[test]
    fn fallbacks_in_order() {
        assert_eq!(
            soco_filter(&[r(0, 0, 60, 60)], 400, 300),
            (vec![r(0, 0, 60, 60)], Rule::RatioOnly)
        );
        assert_eq!(
            soco_filter(&[r(0, 0, 200, 40)], 400, 300),
            (vec![r(0, 0, 200, 40)], Rule::MinSize)
        );
        assert_eq!(
            soco_filter(&[r(0, 0, 10, 10)], 400, 300),
            (vec![r(0, 0, 399, 299)], Rule::WholeImage)
        );
        assert_eq!(soco_filter(&[], 400, 300).1, Rule::WholeImage);
    }
}
