//! MoCo v2 and DenseCL views (METHODS.md §1.1, §2.1): two independent draws of the same
//! augmentation chain on one image. DenseCL needs no geometric bookkeeping between the views
//! (correspondence is found in feature space), so both methods share this builder.
//!
//! Tensors per sample: `view0`, `view1` u8 [size, size, 3] (HWC, RGB, not normalised),
//! `index` i64 [1] (dataset index of the image used), `label` i64 [1] (class or −1).

use anyhow::Result;
use config::ViewAugment;
use proto_shm::schemas::names;
use proto_shm::{SampleTensors, Schema};

use crate::augment::{self, ViewParams};
use crate::rng::{sample_rng, Stream};
use crate::worker::{ImageIo, SampleInfo};

use super::Views;

pub struct TwoCrop {
    method: &'static str,
    view: ViewAugment,
}

impl TwoCrop {
    pub fn new(method: &'static str, view: ViewAugment) -> Self {
        TwoCrop { method, view }
    }

    /// Both views' parameters for a source of `width × height`, from the sample's view streams.
    pub fn draw(&self, info: &SampleInfo, width: usize, height: usize) -> [ViewParams; 2] {
        [0, 1].map(|v| {
            let mut rng = sample_rng(info.seed, info.epoch, info.position, Stream::View(v));
            augment::draw(&mut rng, &self.view, width, height)
        })
    }
}

impl Views for TwoCrop {
    fn schema(&self, batch_size: usize) -> Schema {
        proto_shm::schemas::two_crop(self.method, batch_size, self.view.size)
    }

    fn fill(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleTensors) -> Result<()> {
        let img = io.load(info, info.index, 0, |w, h| {
            let p = self.draw(info, w, h);
            (p, [p[0].need(), p[1].need()])
        })?;
        for (name, p) in [names::VIEW0, names::VIEW1].into_iter().zip(&img.plan) {
            io.renderer
                .render_placed(&io.images[img.slot], &img.placement, p, out.take(name));
        }
        out.take(names::INDEX)
            .copy_from_slice(&(img.index as i64).to_le_bytes());
        out.take(names::LABEL)
            .copy_from_slice(&img.label.to_le_bytes());
        Ok(())
    }
}
