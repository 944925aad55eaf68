//! Unit tests of SoCo's box bookkeeping (`soco.rs`), kept beside it to keep that file to its
//! concern.

use super::*;
use rand::SeedableRng;

#[test]
fn fpn_levels_on_hand_cases() {
    let l = (48.0, 96.0, 192.0);
    for (s, want) in [
        (1.0, 0),
        (48.0, 0),
        (48.5, 1),
        (96.0, 1),
        (97.0, 2),
        (192.0, 2),
        (193.0, 3),
        (224.0, 3),
    ] {
        assert_eq!(fpn_level(s, l), want, "side {s}");
    }
    // The whole of V1 (224²) is P5; the whole of a 112² V3 is P4; a 40×40-pixel box of a
    // 448-pixel crop shown at 224 is 20 px: P2.
    let cfg = SocoConfig::default();
    let whole = |size, c: CropBox| {
        normalise(
            &[IdBox::from_rect([0, 0, c.w as u32, c.h as u32], 1)],
            &c,
            size,
            false,
            &cfg,
        )[0]
        .level
    };
    assert_eq!(whole(224, CropBox::full(500, 375)), 3);
    assert_eq!(whole(112, CropBox::full(300, 300)), 2);
    let small = normalise(
        &[IdBox::from_rect([100, 100, 40, 40], 1)],
        &CropBox::full(448, 448),
        224,
        false,
        &cfg,
    );
    assert_eq!(small[0].level, 0);
}

#[test]
fn selection_overlaps_the_crop_and_respects_k() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let boxes: Vec<IdBox> = (0..20)
        .map(|i| IdBox::from_rect([i * 20, i * 10, 40, 30], i as i32 + 1))
        .collect();
    let crop = CropBox {
        x: 100,
        y: 50,
        w: 120,
        h: 80,
    };
    for _ in 0..200 {
        let s = select(&mut rng, &boxes, &crop, 4);
        assert!(s.len() <= 4);
        let mut ids: Vec<i32> = s.iter().map(|b| b.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), s.len(), "without replacement");
        assert!(s.iter().all(|b| b.overlaps(&crop)));
    }
    // Touching only at the crop's edge is not an overlap (strict inequalities).
    let edge = IdBox::from_rect([219, 0, 30, 30], 1);
    assert!(!edge.overlaps(&CropBox {
        x: 0,
        y: 0,
        w: 220,
        h: 220
    }));
}

#[test]
fn padding_copies_only_shared_ids() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let b = |id| IdBox::from_rect([0, 0, 10, 10], id);
    let (mut a, mut v) = (vec![b(1), b(2)], vec![b(2), b(3), b(4)]);
    pad_pair(&mut rng, &mut a, &mut v, 4);
    assert_eq!((a.len(), v.len()), (4, 4));
    assert_eq!(a[2..].iter().map(|x| x.id).collect::<Vec<_>>(), [2, 2]);
    assert_eq!(v[3].id, 2);
    // No shared id: each side repeats its own boxes.
    let (mut a, mut v) = (vec![b(1)], vec![b(5)]);
    pad_pair(&mut rng, &mut a, &mut v, 4);
    assert!(a.iter().all(|x| x.id == 1) && v.iter().all(|x| x.id == 5));
}

#[test]
fn jitter_moves_boxes_by_at_most_r() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let b = IdBox::from_rect([100, 50, 200, 100], 3);
    let mut moved = 0;
    for _ in 0..2000 {
        let j = jitter(&mut rng, b, 0.5, 0.1);
        assert_eq!(j.id, 3);
        assert!((j.x1 - b.x1).abs() <= 20.0 + 1e-9 && (j.y1 - b.y1).abs() <= 10.0 + 1e-9);
        let (w, h) = (j.x2 - j.x1 + 1.0, j.y2 - j.y1 + 1.0);
        assert!((180.0..=220.0).contains(&w) && (90.0..=110.0).contains(&h));
        moved += (j != b) as usize;
    }
    assert!((850..1150).contains(&moved), "p 0.5: {moved} of 2000 moved");
}
