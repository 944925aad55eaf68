//! Segmentation samples: an image and its label map, for fine-tuning (mmseg's train pipeline) or
//! validation (the whole image, exact labels).
//!
//! Fine-tuning, in mmseg's order and with its draws (METHODS.md §2.5): `Resize` — a ratio r from
//! `ratio_range`, the image rescaled keeping its aspect to fit `scale`·r (long, short side; mmseg's
//! `int(x·f + 0.5)` sizes) —, `RandomCrop` — an offset uniform over the margin, redrawn up to 10
//! times while one class covers `cat_max_ratio` or more of the crop's labelled pixels —,
//! `RandomFlip`, `PhotoMetricDistortion`, and padding to the crop (image 0, label 255). The image
//! is resampled with Pillow's bilinear filter over exactly the crop's window of the rescaled image;
//! the label map with nearest neighbour at the same pixel centres, so label and image never part.
//!
//! Validation: the image at its own size and the label map byte for byte, in the top-left corner
//! of a slot as large as the split's largest image (`val_slot`); `extent` says how much is real.

use std::cell::RefCell;
use std::sync::Arc;

use anyhow::{bail, Result};
use config::{DatasetLayout, RunConfig, SegPhase, SegmentationConfig};
use proto_shm::schemas::names;
use proto_shm::{SampleTensors, Schema};
use rand::Rng;

use crate::decode::{Placement, RegionNeed};
use crate::image::RgbImage;
use crate::ops::crop::CropBox;
use crate::ops::flip::hflip;
use crate::ops::photometric::Photometric;
use crate::rng::{sample_rng, Stream};
use crate::segsource::{LabelMap, SegDataset, IGNORE};
use crate::worker::{ImageIo, SampleInfo};

use super::Views;

/// Redraws of a crop that fails `cat_max_ratio` (mmseg's 10).
pub const CROP_REDRAWS: usize = 10;

pub struct Segmentation {
    cfg: SegmentationConfig,
    dataset: Arc<SegDataset>,
}

/// Every random choice of one training sample, in rescaled-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegParams {
    /// The rescaled image size (width, height).
    pub scaled: (usize, usize),
    /// The crop window in the rescaled image: x, y, w, h (w, h at most the crop size).
    pub window: CropBox,
    pub flip: bool,
    pub photometric: Option<Photometric>,
}

/// mmseg's keep-ratio rescale of a `w × h` image to fit (long, short) `scale`·`ratio`.
pub fn rescaled_size(w: usize, h: usize, scale: (usize, usize), ratio: f32) -> (usize, usize) {
    let target = (
        (scale.0 as f64 * ratio as f64) as usize,
        (scale.1 as f64 * ratio as f64) as usize,
    );
    let (long, short) = (target.0.max(target.1), target.0.min(target.1));
    let f = (long as f64 / w.max(h) as f64).min(short as f64 / w.min(h) as f64);
    (
        ((w as f64 * f + 0.5) as usize).max(1),
        ((h as f64 * f + 0.5) as usize).max(1),
    )
}

/// The source pixel a rescaled pixel reads by nearest neighbour: the one under its centre.
fn nearest(i: usize, scaled: usize, full: usize) -> usize {
    (((i as f64 + 0.5) * full as f64 / scaled as f64) as usize).min(full - 1)
}

/// The source columns (or rows) that rescaled pixels `from..from + n` read by nearest neighbour
/// (computed once per window, not per pixel).
fn nearest_range(from: usize, n: usize, scaled: usize, full: usize) -> Vec<usize> {
    (from..from + n).map(|i| nearest(i, scaled, full)).collect()
}

/// Whether one class covers less than `max_ratio` of the window's labelled pixels, with at least
/// two classes present (mmseg's test).
pub fn crop_is_varied(
    label: &LabelMap,
    scaled: (usize, usize),
    w: CropBox,
    max_ratio: f32,
) -> bool {
    let mut counts = [0u64; 256];
    let xs = nearest_range(w.x, w.w, scaled.0, label.width);
    for sy in nearest_range(w.y, w.h, scaled.1, label.height) {
        let row = &label.labels[sy * label.width..(sy + 1) * label.width];
        for &sx in &xs {
            counts[row[sx] as usize] += 1;
        }
    }
    counts[IGNORE as usize] = 0;
    let present = counts.iter().filter(|&&c| c > 0).count();
    let total: u64 = counts.iter().sum();
    let max = counts.iter().copied().max().unwrap_or(0);
    present > 1 && (max as f64) / (total as f64) < max_ratio as f64
}

/// Draws a crop window of `crop` (h, w) in a `scaled` image: offsets uniform over the margins,
/// redrawn while `varied` fails, at most [`CROP_REDRAWS`] times (the last draw stands).
pub fn draw_window(
    rng: &mut impl Rng,
    scaled: (usize, usize),
    crop: (usize, usize),
    mut varied: impl FnMut(CropBox) -> bool,
    check: bool,
) -> CropBox {
    let (w, h) = (crop.1.min(scaled.0), crop.0.min(scaled.1));
    let draw = |rng: &mut dyn rand::RngCore| CropBox {
        y: rng.random_range(0..=scaled.1 - h),
        x: rng.random_range(0..=scaled.0 - w),
        w,
        h,
    };
    let mut window = draw(rng);
    if check {
        for _ in 0..CROP_REDRAWS {
            if varied(window) {
                break;
            }
            window = draw(rng);
        }
    }
    window
}

impl Segmentation {
    pub fn open(run: &RunConfig, cfg: SegmentationConfig) -> Result<Segmentation> {
        let DatasetLayout::Segmentation { format, split } = &run.dataset.layout else {
            bail!("segmentation needs a Segmentation dataset layout");
        };
        let mut ds = SegDataset::open(&run.dataset.root, format.clone(), split, cfg.classes)?;
        if let Some(n) = run.dataset.max_images {
            ds.pairs.truncate(n);
        }
        Ok(Segmentation {
            cfg,
            dataset: Arc::new(ds),
        })
    }

    /// The image/label pairs it reads (tools and tests that look at samples).
    pub fn dataset(&self) -> &SegDataset {
        &self.dataset
    }

    fn training(&self) -> bool {
        matches!(self.cfg.phase, SegPhase::Finetune)
    }

    /// The (height, width) of a sample slot.
    pub fn slot(&self) -> (usize, usize) {
        if self.training() {
            self.cfg.crop
        } else {
            self.cfg.val_slot
        }
    }

    /// Draws a training sample's parameters for an image `w × h` whose label map is `label`.
    pub fn draw(&self, info: &SampleInfo, label: &LabelMap) -> SegParams {
        let c = &self.cfg;
        let mut rng = sample_rng(info.seed, info.epoch, info.position, Stream::View(0));
        let ratio = c.ratio_range.0 + (c.ratio_range.1 - c.ratio_range.0) * rng.random::<f32>();
        let scaled = rescaled_size(label.width, label.height, c.scale, ratio);
        let window = draw_window(
            &mut rng,
            scaled,
            c.crop,
            |w| crop_is_varied(label, scaled, w, c.cat_max_ratio),
            c.cat_max_ratio < 1.0,
        );
        let flip = c.flip_p > 0.0 && (c.flip_p >= 1.0 || rng.random::<f32>() < c.flip_p);
        let photometric = c.photometric.then(|| Photometric::draw(&mut rng));
        SegParams {
            scaled,
            window,
            flip,
            photometric,
        }
    }

    /// Loads the image at `info` (or its replacement) with its checked label map and, for
    /// training, the sample's draws.
    fn load(
        &self,
        info: &SampleInfo,
        io: &mut ImageIo,
    ) -> Result<(crate::worker::Loaded<Option<SegParams>>, LabelMap)> {
        let label: RefCell<Option<Result<LabelMap>>> = RefCell::new(None);
        let loaded = io.load_indexed(info, info.index, 0, |index, w, h| {
            let map = self.dataset.label(index).and_then(|m| {
                if (m.width, m.height) != (w, h) {
                    bail!(
                        "{}: label map is {}×{}, its image {} is {w}×{h}",
                        self.dataset.pairs[index].label.display(),
                        m.width,
                        m.height,
                        self.dataset.pairs[index].image.display()
                    );
                }
                Ok(m)
            });
            let (params, out) = match (&map, self.training()) {
                (Ok(m), true) => {
                    let p = self.draw(info, m);
                    (Some(p), p.scaled)
                }
                _ => (None, (w, h)),
            };
            *label.borrow_mut() = Some(map);
            // The whole image: the window is resampled with taps that may reach outside it.
            (
                params,
                [RegionNeed {
                    crop: CropBox::full(w, h),
                    out,
                }],
            )
        })?;
        let map = label.into_inner().expect("the plan ran")?;
        Ok((loaded, map))
    }
}

/// Writes the crop `window` of the image rescaled to `scaled`, resampled from `src` (decoded
/// as `placement` says), into the top-left of `out` (`slot_w` pixels wide), row by row.
fn render_window(
    io: &mut ImageIo,
    src: usize,
    placement: &Placement,
    scaled: (usize, usize),
    window: CropBox,
    slot_w: usize,
    out: &mut [u8],
) {
    let (fw, fh) = placement.full;
    // Full-resolution box of the window, then into the decoded pixels' coordinates.
    let (kx, ky) = (fw as f64 / scaled.0 as f64, fh as f64 / scaled.1 as f64);
    let (dx, dy) = (
        placement.scaled.0 as f64 / fw as f64,
        placement.scaled.1 as f64 / fh as f64,
    );
    let (ox, oy) = (placement.origin.0 as f64, placement.origin.1 as f64);
    let b = [
        window.x as f64 * kx * dx - ox,
        window.y as f64 * ky * dy - oy,
        (window.x + window.w) as f64 * kx * dx - ox,
        (window.y + window.h) as f64 * ky * dy - oy,
    ];
    let mut buf = std::mem::take(&mut io.scratch);
    buf.resize(window.w * window.h * 3, 0);
    io.renderer
        .resize(io.images[src].view(), b, window.w, window.h, &mut buf);
    for y in 0..window.h {
        out[y * slot_w * 3..(y * slot_w + window.w) * 3]
            .copy_from_slice(&buf[y * window.w * 3..(y + 1) * window.w * 3]);
    }
    io.scratch = buf;
}

fn copy_image(src: &RgbImage, slot_w: usize, out: &mut [u8]) {
    for y in 0..src.height {
        out[y * slot_w * 3..(y * slot_w + src.width) * 3].copy_from_slice(src.view().row(y));
    }
}

impl Views for Segmentation {
    fn schema(&self, batch_size: usize) -> Schema {
        let (h, w) = self.slot();
        let name = if self.training() {
            "segmentation"
        } else {
            "segmentation-val"
        };
        proto_shm::schemas::segmentation(name, batch_size, h, w).attr("classes", self.cfg.classes)
    }

    fn fill(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleTensors) -> Result<()> {
        let (slot_h, slot_w) = self.slot();
        let (img, label) = self.load(info, io)?;
        let image = out.take(names::VIEW0);
        image.fill(0);
        let extent = match img.plan {
            Some(p) => {
                let w = p.window;
                render_window(io, img.slot, &img.placement, p.scaled, w, slot_w, image);
                let seg = out.take(names::SEG_LABEL);
                seg.fill(IGNORE);
                let xs = nearest_range(w.x, w.w, p.scaled.0, label.width);
                let ys = nearest_range(w.y, w.h, p.scaled.1, label.height);
                for (y, &sy) in ys.iter().enumerate() {
                    let src = &label.labels[sy * label.width..(sy + 1) * label.width];
                    let row = &mut seg[y * slot_w..y * slot_w + w.w];
                    for (v, &sx) in row.iter_mut().zip(&xs) {
                        *v = src[sx];
                    }
                    if p.flip {
                        row.reverse();
                    }
                }
                // Flip and distort the real content only; padding stays 0 (mmseg pads last).
                for y in 0..w.h {
                    let row = &mut image[y * slot_w * 3..(y * slot_w + w.w) * 3];
                    if p.flip {
                        hflip(row, w.w);
                    }
                    if let Some(d) = &p.photometric {
                        d.apply(row);
                    }
                }
                (w.h, w.w)
            }
            None => {
                let (w, h) = img.placement.full;
                if h > slot_h || w > slot_w {
                    bail!(
                        "{}: {w}×{h} does not fit the validation slot {slot_w}×{slot_h} \
                         (segmentation.val_slot; tools/evaluate sizes it from the split)",
                        io.dataset.path_of(img.index).display()
                    );
                }
                let src = &io.images[img.slot];
                if (src.width, src.height) != (w, h) {
                    bail!("validation images are decoded whole, at full size");
                }
                copy_image(src, slot_w, image);
                let seg = out.take(names::SEG_LABEL);
                seg.fill(IGNORE);
                for y in 0..h {
                    seg[y * slot_w..y * slot_w + w]
                        .copy_from_slice(&label.labels[y * w..(y + 1) * w]);
                }
                (h, w)
            }
        };
        let e = out.take(names::EXTENT);
        e[..4].copy_from_slice(&(extent.0 as i32).to_le_bytes());
        e[4..].copy_from_slice(&(extent.1 as i32).to_le_bytes());
        out.take(names::INDEX)
            .copy_from_slice(&(img.index as i64).to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_follows_mmseg_keep_ratio() {
        // VOC 500×375 at (2048, 512)·1.0: short side 375 → 512 binds (f = 1.3653).
        assert_eq!(rescaled_size(500, 375, (2048, 512), 1.0), (683, 512));
        // Cityscapes 2048×1024 at (2049, 1025)·0.5 = (1024, 512): f = 0.5.
        assert_eq!(rescaled_size(2048, 1024, (2049, 1025), 0.5), (1024, 512));
        // A very wide image is bound by the long side.
        assert_eq!(rescaled_size(4000, 100, (2048, 512), 1.0), (2048, 51));
    }
}
