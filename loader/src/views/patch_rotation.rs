//! SSL4DP patch-level rotation (METHODS.md §9): one augmented view cut into a g×g grid of square
//! patches, each rotated independently by k·90° counter-clockwise, k ∈ {0, 1, 2, 3} uniform; the
//! network predicts k for every pixel of each patch. The ring carries the rotated view and the
//! g×g map of k.

use anyhow::Result;
use config::PatchRotationConfig;
use proto_shm::schemas::names;
use proto_shm::{SampleTensors, Schema};
use rand::Rng;

use crate::augment;
use crate::rng::{sample_rng, Stream};
use crate::worker::{ImageIo, SampleInfo};

use super::Views;

pub struct PatchRotation {
    cfg: PatchRotationConfig,
}

/// Rotates the `p × p` patch at (`x0`, `y0`) of a packed RGB image `width` wide by `k`·90°
/// counter-clockwise, in place (`tmp` holds one patch).
pub fn rotate_patch(
    data: &mut [u8],
    width: usize,
    x0: usize,
    y0: usize,
    p: usize,
    k: u8,
    tmp: &mut Vec<u8>,
) {
    if k.is_multiple_of(4) {
        return;
    }
    tmp.resize(p * p * 3, 0);
    for y in 0..p {
        let row = ((y0 + y) * width + x0) * 3;
        tmp[y * p * 3..(y + 1) * p * 3].copy_from_slice(&data[row..row + p * 3]);
    }
    for y in 0..p {
        for x in 0..p {
            // Source pixel of output (x, y) for a CCW rotation by k quarter turns.
            let (sx, sy) = match k % 4 {
                1 => (p - 1 - y, x),
                2 => (p - 1 - x, p - 1 - y),
                _ => (y, p - 1 - x),
            };
            let d = ((y0 + y) * width + x0 + x) * 3;
            let s = (sy * p + sx) * 3;
            data[d..d + 3].copy_from_slice(&tmp[s..s + 3]);
        }
    }
}

impl PatchRotation {
    pub fn new(cfg: PatchRotationConfig) -> Self {
        PatchRotation { cfg }
    }

    /// The rotation of every patch, from the sample's method stream.
    pub fn draw_rotations(&self, info: &SampleInfo) -> Vec<u8> {
        let mut rng = sample_rng(info.seed, info.epoch, info.position, Stream::Method);
        (0..self.cfg.grid * self.cfg.grid)
            .map(|_| rng.random_range(0..4u8))
            .collect()
    }
}

impl Views for PatchRotation {
    fn schema(&self, batch_size: usize) -> Schema {
        proto_shm::schemas::patch_rotation(batch_size, self.cfg.view.size, self.cfg.grid)
    }

    fn fill(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleTensors) -> Result<()> {
        let size = self.cfg.view.size;
        let img = io.load(info, info.index, 0, |w, h| {
            let mut rng = sample_rng(info.seed, info.epoch, info.position, Stream::View(0));
            let p = augment::draw(&mut rng, &self.cfg.view, w, h);
            (p, [p.need()])
        })?;
        let view = out.take(names::VIEW0);
        io.renderer
            .render_placed(&io.images[0], &img.placement, &img.plan, view);
        let rotations = self.draw_rotations(info);
        let (g, p) = (self.cfg.grid, size / self.cfg.grid);
        let mut tmp = Vec::new();
        for (k, &r) in rotations.iter().enumerate() {
            rotate_patch(view, size, (k % g) * p, (k / g) * p, p, r, &mut tmp);
        }
        out.take(names::ROTATION).copy_from_slice(&rotations);
        out.take(names::INDEX)
            .copy_from_slice(&(img.index as i64).to_le_bytes());
        out.take(names::LABEL)
            .copy_from_slice(&img.label.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_compose_and_match_hand_cases() {
        // 2×2 patch: a b / c d. CCW by 90°: b d / a c.
        let px = |v: u8| [v, v, v];
        let mut d: Vec<u8> = [1u8, 2, 3, 4].iter().flat_map(|&v| px(v)).collect();
        let mut tmp = Vec::new();
        rotate_patch(&mut d, 2, 0, 0, 2, 1, &mut tmp);
        let firsts: Vec<u8> = d.chunks(3).map(|c| c[0]).collect();
        assert_eq!(firsts, vec![2, 4, 1, 3]);
        // Four quarter turns are the identity; k then 4−k too.
        let orig: Vec<u8> = (0..5 * 5 * 3).map(|i| (i * 7 % 251) as u8).collect();
        for k in 0..4u8 {
            let mut d = orig.clone();
            rotate_patch(&mut d, 5, 0, 0, 5, k, &mut tmp);
            rotate_patch(&mut d, 5, 0, 0, 5, (4 - k) % 4, &mut tmp);
            assert_eq!(d, orig, "k = {k}");
        }
        // Only the patch moves.
        let mut big: Vec<u8> = (0..8 * 8 * 3).map(|i| (i % 256) as u8).collect();
        let before = big.clone();
        rotate_patch(&mut big, 8, 4, 4, 4, 2, &mut tmp);
        for y in 0..8 {
            for x in 0..8 {
                let i = (y * 8 + x) * 3;
                if x < 4 || y < 4 {
                    assert_eq!(big[i..i + 3], before[i..i + 3]);
                }
            }
        }
    }
}
