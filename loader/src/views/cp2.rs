//! CP² copy-paste composites (METHODS.md §4.1): two MoCo v2 views of a foreground image; two other
//! images' MoCo v2 views as backgrounds; in each background one axis-aligned window of 50–80 % of the
//! area (aspect 0.8–1.25, torchvision RandomErasing's draw) through which the foreground view shows
//! unscaled. Unlike the official code, a window is always placed — RandomErasing gives up after 10
//! tries and leaves an empty mask (NaN losses); we clamp the last draw into the image instead.
//!
//! Tensors per sample: `view0`, `view1` (composites), `mask0`, `mask1` (1 inside the window),
//! `grid0`, `grid1` (the mask at the centres of the output-stride cells, `mask[s/2::s, s/2::s]`),
//! `index`, `label`.

use anyhow::Result;
use config::Cp2Config;
use proto_shm::schemas::names;
use proto_shm::{SampleTensors, Schema};
use rand::Rng;

use crate::augment::{self, ViewParams};
use crate::ops::crop::uniform;
use crate::rng::{sample_rng, Stream};
use crate::worker::{ImageIo, SampleInfo};

use super::Views;

/// A pasted window in view pixels: rows `y..y+h`, columns `x..x+w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// RandomErasing's window for a `size × size` canvas, always placed.
pub fn draw_window(rng: &mut impl Rng, size: usize, area: (f32, f32), ratio: (f32, f32)) -> Window {
    let total = (size * size) as f64;
    let (lo, hi) = ((ratio.0 as f64).ln(), (ratio.1 as f64).ln());
    let mut last = (size, size);
    for _ in 0..10 {
        let a = total * uniform(rng, area.0 as f64, area.1 as f64);
        let r = uniform(rng, lo, hi).exp();
        let h = (a * r).sqrt().round() as usize;
        let w = (a / r).sqrt().round() as usize;
        last = (h, w);
        if h < size && w < size && h > 0 && w > 0 {
            let y = rng.random_range(0..=size - h);
            let x = rng.random_range(0..=size - w);
            return Window { x, y, w, h };
        }
    }
    let (h, w) = (last.0.clamp(1, size - 1), last.1.clamp(1, size - 1));
    Window {
        x: rng.random_range(0..=size - w),
        y: rng.random_range(0..=size - h),
        w,
        h,
    }
}

pub struct Cp2 {
    cfg: Cp2Config,
}

/// Everything drawn for one sample.
#[derive(Debug, Clone)]
pub struct Cp2Draw {
    /// Background dataset indices for composite 0 and 1.
    pub backgrounds: [usize; 2],
    pub windows: [Window; 2],
}

impl Cp2 {
    pub fn new(cfg: Cp2Config) -> Self {
        Cp2 { cfg }
    }

    /// Backgrounds (two other images) and windows, from the sample's method stream.
    pub fn draw(&self, info: &SampleInfo) -> Cp2Draw {
        let mut rng = sample_rng(info.seed, info.epoch, info.position, Stream::Method);
        let mut other = || loop {
            let i = rng.random_range(0..info.dataset_len);
            if i != info.index || info.dataset_len == 1 {
                break i;
            }
        };
        let backgrounds = [other(), other()];
        let size = self.cfg.view.size;
        let windows =
            [0, 1].map(|_| draw_window(&mut rng, size, self.cfg.paste_area, self.cfg.paste_ratio));
        Cp2Draw {
            backgrounds,
            windows,
        }
    }

    /// View `v` (0, 1: foreground; 2, 3: backgrounds) of a `w × h` source.
    pub fn view_params(&self, info: &SampleInfo, v: u32, w: usize, h: usize) -> ViewParams {
        let mut rng = sample_rng(info.seed, info.epoch, info.position, Stream::View(v));
        augment::draw(&mut rng, &self.cfg.view, w, h)
    }

    fn compose(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleTensors) -> Result<()> {
        let size = self.cfg.view.size;
        let d = self.draw(info);
        let fg = io.load(info, info.index, 0, |w, h| {
            let p = [
                self.view_params(info, 0, w, h),
                self.view_params(info, 1, w, h),
            ];
            (p, [p[0].need(), p[1].need()])
        })?;
        let (fg_index, fg_label) = (fg.index, fg.label);
        let mut composites = [out.take(names::VIEW0), out.take(names::VIEW1)];
        let masks = [out.take(names::MASK0), out.take(names::MASK1)];
        let grids = [out.take(names::GRID0), out.take(names::GRID1)];
        for (view, p) in composites.iter_mut().zip(&fg.plan) {
            io.renderer
                .render_placed(&io.images[0], &fg.placement, p, view);
        }
        // The background view goes to the worker's scratch buffer: no allocation per sample.
        let mut bg = std::mem::take(&mut io.scratch);
        bg.resize(size * size * 3, 0);
        let stride = self.cfg.output_stride;
        for c in 0..2 {
            let b = io.load(info, d.backgrounds[c], 1 + c, |w, h| {
                let p = self.view_params(info, 2 + c as u32, w, h);
                (p, [p.need()])
            })?;
            io.renderer
                .render_placed(&io.images[1 + c], &b.placement, &b.plan, &mut bg);
            let win = d.windows[c];
            // Composite: the foreground view inside the window, the background outside.
            let (view, mask) = (&mut *composites[c], &mut *masks[c]);
            // Row by row: rows outside the window take the whole background row; rows through
            // it take the background left and right of it.
            for y in 0..size {
                let (row, mask_row) = (y * size * 3, &mut mask[y * size..(y + 1) * size]);
                if y < win.y || y >= win.y + win.h {
                    view[row..row + size * 3].copy_from_slice(&bg[row..row + size * 3]);
                    mask_row.fill(0);
                } else {
                    let (left, right) = (row + win.x * 3, row + (win.x + win.w) * 3);
                    view[row..left].copy_from_slice(&bg[row..left]);
                    view[right..row + size * 3].copy_from_slice(&bg[right..row + size * 3]);
                    mask_row.fill(0);
                    mask_row[win.x..win.x + win.w].fill(1);
                }
            }
            let g = size / stride;
            for gy in 0..g {
                for gx in 0..g {
                    grids[c][gy * g + gx] =
                        masks[c][(gy * stride + stride / 2) * size + gx * stride + stride / 2];
                }
            }
        }
        io.scratch = bg;
        out.take(names::INDEX)
            .copy_from_slice(&(fg_index as i64).to_le_bytes());
        out.take(names::LABEL)
            .copy_from_slice(&fg_label.to_le_bytes());
        Ok(())
    }
}

impl Views for Cp2 {
    fn schema(&self, batch_size: usize) -> Schema {
        proto_shm::schemas::cp2(batch_size, self.cfg.view.size, self.cfg.output_stride)
    }

    fn fill(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleTensors) -> Result<()> {
        self.compose(info, io, out)
    }
}
