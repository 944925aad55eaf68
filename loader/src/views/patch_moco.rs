//! SSL4DP patch-level MoCo (METHODS.md §9): the two MoCo v2 views plus, for every stride-16 cell of
//! view 0, which cell of view 1 shows the same point of the source image — computed from the known
//! crop boxes and flips, not from features. The cell centre of view 0 is mapped back through its
//! flip and crop to source coordinates, then forward through view 1's crop and flip; −1 when it
//! lands outside view 1.

use anyhow::Result;
use config::PatchMocoConfig;
use proto_shm::schemas::names;
use proto_shm::{SampleTensors, Schema};

use crate::augment::ViewParams;
use crate::worker::{ImageIo, SampleInfo};

use super::{TwoCrop, Views};

pub struct PatchMoco {
    two: TwoCrop,
    cfg: PatchMocoConfig,
}

/// For each cell of view `a` (row-major, `size/stride` per side), the matching cell of view `b`.
pub fn cell_matches(a: &ViewParams, b: &ViewParams, size: usize, stride: usize) -> Vec<i32> {
    let g = size / stride;
    let s = size as f64;
    let mut out = Vec::with_capacity(g * g);
    for i in 0..g {
        for j in 0..g {
            // Continuous coordinates (pixel centres at +0.5) of the cell centre in view a.
            let mut u = (j * stride) as f64 + stride as f64 / 2.0;
            let v = (i * stride) as f64 + stride as f64 / 2.0;
            if a.flip {
                u = s - u;
            }
            let x = a.crop.x as f64 + u * a.crop.w as f64 / s;
            let y = a.crop.y as f64 + v * a.crop.h as f64 / s;
            let mut u2 = (x - b.crop.x as f64) * s / b.crop.w as f64;
            let v2 = (y - b.crop.y as f64) * s / b.crop.h as f64;
            if b.flip {
                u2 = s - u2;
            }
            out.push(if (0.0..s).contains(&u2) && (0.0..s).contains(&v2) {
                ((v2 as usize / stride) * g + u2 as usize / stride) as i32
            } else {
                -1
            });
        }
    }
    out
}

impl PatchMoco {
    pub fn new(cfg: PatchMocoConfig) -> Self {
        PatchMoco {
            two: TwoCrop::new("patch-moco", cfg.moco.view.clone()),
            cfg,
        }
    }
}

impl Views for PatchMoco {
    fn schema(&self, batch_size: usize) -> Schema {
        proto_shm::schemas::patch_moco(batch_size, self.cfg.moco.view.size, self.cfg.cell_stride)
    }

    fn fill(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleTensors) -> Result<()> {
        let img = io.load(info, info.index, 0, |w, h| {
            let p = self.two.draw(info, w, h);
            (p, [p[0].need(), p[1].need()])
        })?;
        for (name, p) in [names::VIEW0, names::VIEW1].into_iter().zip(&img.plan) {
            io.renderer
                .render_placed(&io.images[0], &img.placement, p, out.take(name));
        }
        let m = cell_matches(
            &img.plan[0],
            &img.plan[1],
            self.cfg.moco.view.size,
            self.cfg.cell_stride,
        );
        let matches = out.take(names::MATCH);
        for (k, c) in m.iter().enumerate() {
            matches[k * 4..k * 4 + 4].copy_from_slice(&c.to_le_bytes());
        }
        out.take(names::INDEX)
            .copy_from_slice(&(img.index as i64).to_le_bytes());
        out.take(names::LABEL)
            .copy_from_slice(&img.label.to_le_bytes());
        Ok(())
    }
}
