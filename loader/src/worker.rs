//! What one worker thread owns and does: read a file, probe it, let the view builder draw its
//! parameters from the header's size, pick the DCT scale those parameters allow, decode, and hand
//! the pixels back. An image that cannot be used is counted, named in the log once, and replaced by
//! a deterministic draw from the dataset, so batches stay full and identical for any worker count.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use rand::Rng;

use crate::augment::{needed_rect, Renderer};
use crate::decode::{
    pick_dct_scale, scaled_size, DecodeError, Decoder, ImageInfo, Placement, RegionNeed, SkipKind,
};
use crate::image::RgbImage;
use crate::rng::{sample_rng, Stream};
use crate::source::Dataset;

/// Where a sample sits in the stream; every random draw of the sample derives from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    pub seed: u64,
    pub epoch: u64,
    /// Position in the epoch's permutation (global, across ranks).
    pub position: u64,
    /// Dataset index at that position.
    pub index: usize,
    /// Size of the dataset, for draws of further images (CP² backgrounds, replacements).
    pub dataset_len: usize,
}

/// Give up on a sample after this many unusable images in a row: the dataset is mostly broken.
pub const MAX_REPLACEMENTS: u32 = 64;

/// Skipped images, counted by reason; each file is logged once.
#[derive(Debug, Default)]
pub struct SkipLog {
    counts: Mutex<BTreeMap<SkipKind, u64>>,
    logged: Mutex<HashSet<usize>>,
}

impl SkipLog {
    pub fn record(&self, index: usize, path: &std::path::Path, e: &DecodeError) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(e.kind.clone())
            .or_default() += 1;
        if self.logged.lock().unwrap().insert(index) {
            tracing::warn!(file = %path.display(), reason = %e, "skipping image (replaced deterministically)");
        }
    }

    pub fn counts(&self) -> BTreeMap<SkipKind, u64> {
        self.counts.lock().unwrap().clone()
    }

    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().values().sum()
    }
}

/// A decoded image with the plan the view builder drew for it.
pub struct Loaded<P> {
    pub plan: P,
    /// Dataset index actually used (differs from the requested one after a replacement).
    pub index: usize,
    pub label: i64,
    /// The full-resolution size from the header, and where the decoded pixels sit in the image:
    /// they may be DCT-downscaled, and only the rectangle the views read.
    pub placement: Placement,
    /// Which of `ImageIo::images` holds the pixels.
    pub slot: usize,
}

/// A worker's decoding state and buffers, reused for every sample.
pub struct ImageIo {
    pub dataset: Arc<Dataset>,
    pub skips: Arc<SkipLog>,
    pub decoder: Decoder,
    pub renderer: Renderer,
    /// Decode targets; a sample that needs several images uses several slots.
    pub images: Vec<RgbImage>,
    pub dct_scaling: bool,
    /// Decode only the rectangle the views read (on by default; the same samples either way).
    pub partial_decode: bool,
    /// A view-sized scratch buffer for builders that render an intermediate view (CP² backgrounds).
    pub scratch: Vec<u8>,
    bytes: Vec<u8>,
}

impl ImageIo {
    pub fn new(
        dataset: Arc<Dataset>,
        skips: Arc<SkipLog>,
        max_pixels: u64,
        dct_scaling: bool,
    ) -> Self {
        ImageIo {
            dataset,
            skips,
            decoder: Decoder::new(max_pixels),
            renderer: Renderer::new(),
            images: Vec::new(),
            dct_scaling,
            partial_decode: true,
            scratch: Vec::new(),
            bytes: Vec::new(),
        }
    }

    fn read(&mut self, index: usize) -> Result<(), DecodeError> {
        let path = self.dataset.path_of(index);
        let unreadable = |e: std::io::Error| DecodeError {
            kind: SkipKind::Unreadable,
            detail: e.to_string(),
        };
        // Only regular files: opening a FIFO or device would block or read forever.
        let meta = std::fs::metadata(&path).map_err(unreadable)?;
        if !meta.is_file() {
            return Err(DecodeError {
                kind: SkipKind::NotAnImage,
                detail: "not a regular file".into(),
            });
        }
        self.bytes.clear();
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut self.bytes))
            .map_err(unreadable)?;
        Ok(())
    }

    /// Loads dataset image `index` (or its deterministic replacement) into image slot `slot`.
    /// `plan` receives the full-resolution size and returns the view parameters plus the regions
    /// they read (an array: nothing is allocated per sample); it is called again, with the same
    /// streams, if a replacement is needed.
    pub fn load<P, N: AsRef<[RegionNeed]>>(
        &mut self,
        info: &SampleInfo,
        index: usize,
        slot: usize,
        plan: impl Fn(usize, usize) -> (P, N),
    ) -> Result<Loaded<P>> {
        self.load_indexed(info, index, slot, |_, w, h| plan(w, h))
    }

    /// [`ImageIo::load`] for plans that depend on which image is used (its proposals): `plan`
    /// receives the dataset index actually loaded (after any replacement), then the size.
    pub fn load_indexed<P, N: AsRef<[RegionNeed]>>(
        &mut self,
        info: &SampleInfo,
        index: usize,
        slot: usize,
        plan: impl Fn(usize, usize, usize) -> (P, N),
    ) -> Result<Loaded<P>> {
        if self.images.len() <= slot {
            self.images.resize_with(slot + 1, RgbImage::default);
        }
        let mut candidate = index;
        for attempt in 1..=MAX_REPLACEMENTS + 1 {
            match self.try_load(candidate, slot, &plan) {
                Ok(loaded) => return Ok(loaded),
                Err(e) => {
                    self.skips
                        .record(candidate, &self.dataset.path_of(candidate), &e);
                    let mut rng = sample_rng(
                        info.seed,
                        info.epoch,
                        info.position,
                        Stream::Replacement(attempt + slot as u32 * 1000),
                    );
                    candidate = rng.random_range(0..self.dataset.len());
                }
            }
        }
        bail!(
            "{MAX_REPLACEMENTS} unusable images in a row while filling epoch {} position {}: is the dataset readable?",
            info.epoch,
            info.position
        )
    }

    fn try_load<P, N: AsRef<[RegionNeed]>>(
        &mut self,
        index: usize,
        slot: usize,
        plan: &impl Fn(usize, usize, usize) -> (P, N),
    ) -> Result<Loaded<P>, DecodeError> {
        self.read(index)?;
        let header: ImageInfo = self.decoder.probe(&self.bytes)?;
        let (p, needs) = plan(index, header.width, header.height);
        let needs = needs.as_ref();
        let scale = if self.dct_scaling && header.dct_scalable {
            pick_dct_scale(needs)
        } else {
            (1, 1)
        };
        // Decode only the union of what the views read.
        let full = (header.width, header.height);
        let want =
            needed_rect(needs, full, scaled_size(full, scale)).filter(|_| self.partial_decode);
        let placement =
            self.decoder
                .decode_part(&self.bytes, &header, scale, want, &mut self.images[slot])?;
        Ok(Loaded {
            plan: p,
            index,
            label: self.dataset.entries[index].label,
            placement,
            slot,
        })
    }
}
