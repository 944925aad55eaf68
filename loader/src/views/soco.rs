//! SoCo views and box bookkeeping (METHODS.md §3.3).
//!
//! V1 is the whole image resized to `image_size`² (aspect not kept); V2 a RandomResizedCrop to
//! `image_size` (scale `crop_scale_min..1`); V3 an independent crop to `v3_size`; SoCo* adds V4 =
//! V2's crop and flip rendered at `v4_size` (it shares V2's boxes, with its own colour draw).
//!
//! Per sample: up to `max_tries` draws of the V2/V3 crops; for each, K proposals overlapping the
//! crop are picked at random, and the draw is accepted when both picks hold at least
//! `least_common` boxes (K/2 at first, halved after each failure; the last draw stands). V1's copy of
//! each pick is jittered (p 0.5, ±r of the box size), every box is clipped to its view's crop and
//! shifted to it, sets are padded to exactly K with copies of boxes whose ids both views of the pair
//! hold, normalised by the crop size, flipped with their view, and assigned the FPN level of their
//! size in that view's pixels.
//!
//! Edge cases the official code leaves open are defined here: an image with no proposals uses the
//! whole image (id 1); a view left with no box uses the whole view (id 0, [`WHOLE_VIEW_ID`]); padding
//! with no common id
//! //! repeats the view's own boxes (they have no partner and add nothing to the loss).

use std::path::Path;

use anyhow::{bail, Context, Result};
use config::{SocoConfig, ViewAugment};
use proto_shm::schemas::names;
use proto_shm::{SampleTensors, Schema};
use rand::Rng;

use crate::augment::{self, ViewParams};
use crate::decode::RegionNeed;
use crate::ops::crop::{random_resized_crop, uniform, CropBox};
use crate::proposals::ProposalStore;
use crate::rng::{sample_rng, Stream};
use crate::worker::{ImageIo, SampleInfo};

use super::Views;

/// A box in pixels with inclusive corners, and the id of the proposal it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    pub id: i32,
}

impl IdBox {
    /// SoCo's `convert_props`: `[x, y, w, h]` → inclusive `(x, y, x + w − 1, y + h − 1)`.
    pub fn from_rect(r: [u32; 4], id: i32) -> IdBox {
        let [x, y, w, h] = r.map(|v| v as f64);
        IdBox {
            x1: x,
            y1: y,
            x2: x + w - 1.0,
            y2: y + h - 1.0,
            id,
        }
    }

    /// Strict overlap with a crop rectangle (inclusive corners `x..x+w−1`).
    fn overlaps(&self, c: &CropBox) -> bool {
        let (cx2, cy2) = ((c.x + c.w) as f64 - 1.0, (c.y + c.h) as f64 - 1.0);
        self.x1 < cx2 && self.x2 > c.x as f64 && self.y1 < cy2 && self.y2 > c.y as f64
    }

    /// Clipped to `c` and shifted to its origin; None when nothing is left.
    fn into_crop(self, c: &CropBox) -> Option<IdBox> {
        let (cx1, cy1) = (c.x as f64, c.y as f64);
        let (cx2, cy2) = (cx1 + c.w as f64 - 1.0, cy1 + c.h as f64 - 1.0);
        let b = IdBox {
            x1: self.x1.max(cx1) - cx1,
            y1: self.y1.max(cy1) - cy1,
            x2: self.x2.min(cx2) - cx1,
            y2: self.y2.min(cy2) - cy1,
            id: self.id,
        };
        (b.x1 < b.x2 && b.y1 < b.y2).then_some(b)
    }
}

/// A box as the network sees it: corners normalised by the view's crop, flipped with the view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewBox {
    pub coords: [f32; 4],
    pub id: i32,
    pub level: u8,
}

/// Everything drawn for one sample: the views' parameters (V1, V2, V3, V4) and the box sets in
/// the order of `proto_shm::schemas::SOCO_BOX_SETS`.
#[derive(Debug, Clone)]
pub struct SocoDraw {
    pub view_params: Vec<ViewParams>,
    pub sets: Vec<Vec<ViewBox>>,
    /// Boxes of V2 and V3 (view pixels, before padding) where cutout paints the mean colour.
    pub cutouts: [Vec<[usize; 4]>; 2],
}

/// FPN level of a box of side `s = √((x2−x1+1)(y2−y1+1))` in view pixels: P2 up to `limits.0`,
/// P3 up to `limits.1`, P4 up to `limits.2`, else P5 (`assign_bboxs_to_feature_map`).
pub fn fpn_level(s: f64, limits: (f32, f32, f32)) -> u8 {
    if s <= limits.0 as f64 {
        0
    } else if s <= limits.1 as f64 {
        1
    } else if s <= limits.2 as f64 {
        2
    } else {
        3
    }
}

/// Picks up to `k` of `boxes` overlapping `crop`, uniformly without replacement.
fn select(rng: &mut impl Rng, boxes: &[IdBox], crop: &CropBox, k: usize) -> Vec<IdBox> {
    let mut cand: Vec<IdBox> = boxes.iter().filter(|b| b.overlaps(crop)).copied().collect();
    let n = k.min(cand.len());
    for i in 0..n {
        let j = rng.random_range(i..cand.len());
        cand.swap(i, j);
    }
    cand.truncate(n);
    cand
}

/// SoCo's box jitter: with probability `p`, shift the corner by U[−r, r] of the size and scale the
/// size by 1 + U[−r, r], independently in x and y.
fn jitter(rng: &mut impl Rng, b: IdBox, p: f32, r: f32) -> IdBox {
    if !(p > 0.0 && rng.random::<f32>() < p) {
        return b;
    }
    let r = r as f64;
    let j: [f64; 4] = std::array::from_fn(|_| uniform(rng, -r, r));
    let (w, h) = (b.x2 - b.x1 + 1.0, b.y2 - b.y1 + 1.0);
    let (x1, y1) = (b.x1 + j[0] * w, b.y1 + j[1] * h);
    let (w, h) = (w * (1.0 + j[2]), h * (1.0 + j[3]));
    IdBox {
        x1,
        y1,
        x2: x1 + w - 1.0,
        y2: y1 + h - 1.0,
        id: b.id,
    }
}

/// Id of the whole-view box a view falls back to when no proposal reaches it. Proposal ids start
/// at 1, so it never aliases a proposal; a pair's two views fall back together (both picks are
/// empty), so the fallbacks still match each other, as SoCo's id-1 fallback does.
pub const WHOLE_VIEW_ID: i32 = 0;

/// Clips `boxes` into `crop`; the whole view with [`WHOLE_VIEW_ID`] when none survives.
fn to_view(boxes: &[IdBox], crop: &CropBox) -> Vec<IdBox> {
    let v: Vec<IdBox> = boxes.iter().filter_map(|b| b.into_crop(crop)).collect();
    if v.is_empty() {
        vec![IdBox {
            x1: 0.0,
            y1: 0.0,
            x2: crop.w as f64 - 1.0,
            y2: crop.h as f64 - 1.0,
            id: WHOLE_VIEW_ID,
        }]
    } else {
        v
    }
}

/// Pads both sets of a pair to exactly `k` with random copies of boxes whose id both sets hold.
fn pad_pair(rng: &mut impl Rng, a: &mut Vec<IdBox>, b: &mut Vec<IdBox>, k: usize) {
    let common = |s: &[IdBox], other: &[IdBox]| -> Vec<IdBox> {
        let c: Vec<IdBox> = s
            .iter()
            .filter(|x| other.iter().any(|y| y.id == x.id))
            .copied()
            .collect();
        if c.is_empty() {
            s.to_vec()
        } else {
            c
        }
    };
    let (ca, cb) = (common(a, b), common(b, a));
    for (set, pool) in [(a, ca), (b, cb)] {
        set.truncate(k);
        while set.len() < k {
            set.push(pool[rng.random_range(0..pool.len())]);
        }
    }
}

/// Normalises `boxes` (pixels of `crop`) for a view rendered at `size`², flipped with it.
fn normalise(
    boxes: &[IdBox],
    crop: &CropBox,
    size: usize,
    flip: bool,
    cfg: &SocoConfig,
) -> Vec<ViewBox> {
    let (cw, ch) = (crop.w as f64, crop.h as f64);
    boxes
        .iter()
        .map(|b| {
            let (mut x1, y1, mut x2, y2) = (b.x1 / cw, b.y1 / ch, b.x2 / cw, b.y2 / ch);
            if flip {
                (x1, x2) = (1.0 - x2, 1.0 - x1);
            }
            let s = size as f64;
            let side = (((x2 - x1) * s + 1.0) * ((y2 - y1) * s + 1.0))
                .max(0.0)
                .sqrt();
            ViewBox {
                coords: [x1 as f32, y1 as f32, x2 as f32, y2 as f32],
                id: b.id,
                level: fpn_level(side, cfg.fpn_level_limits),
            }
        })
        .collect()
}

/// Where a run's proposals come from.
pub enum Proposals {
    /// A store from `tools/precompute-proposals` (or imported from SoCo's JSON).
    Store(ProposalStore),
    /// Selective search on each decoded image (the slow path: full-resolution decode plus tens of
    /// milliseconds of search per image).
    OnTheFly,
}

pub struct Soco {
    cfg: SocoConfig,
    proposals: Proposals,
    /// Images the store had no entry for (they use the whole image as their one proposal).
    missing: std::sync::atomic::AtomicU64,
    v1: ViewAugment,
    v2: ViewAugment,
    v3: ViewAugment,
    v4: Option<ViewAugment>,
}

impl Soco {
    pub fn new(cfg: SocoConfig, proposals: Proposals) -> Soco {
        let crop = |base: &ViewAugment, size| ViewAugment {
            size,
            scale: (cfg.crop_scale_min, 1.0),
            ..base.clone()
        };
        let v1 = ViewAugment {
            size: cfg.image_size,
            ..cfg.view1_color.clone()
        };
        let v2 = crop(&cfg.view2_color, cfg.image_size);
        let v3 = crop(&cfg.view2_color, cfg.v3_size);
        let v4 = cfg.star.then(|| crop(&cfg.view2_color, cfg.v4_size));
        Soco {
            cfg,
            proposals,
            missing: Default::default(),
            v1,
            v2,
            v3,
            v4,
        }
    }

    /// Opens the run's proposal store, or selects the on-the-fly path when none is configured.
    pub fn open(cfg: SocoConfig, store: Option<&Path>) -> Result<Soco> {
        let proposals = match store {
            Some(p) => Proposals::Store(
                ProposalStore::open(p)
                    .with_context(|| format!("proposal store {}", p.display()))?,
            ),
            None => {
                tracing::warn!(
                    "no proposal store configured: computing selective search for every image \
                     (slow; run tools/precompute-proposals once and set dataset.proposals)"
                );
                Proposals::OnTheFly
            }
        };
        Ok(Soco::new(cfg, proposals))
    }

    /// The stored boxes of dataset image `index` (a `w × h` image): by dataset-relative path, else
    /// by file stem (stores imported from SoCo's JSON).
    fn stored(
        &self,
        store: &ProposalStore,
        io_key: &Path,
        w: usize,
        h: usize,
    ) -> Result<Vec<[u32; 4]>> {
        let key = io_key.to_string_lossy();
        let found = match store.get(&key)? {
            Some(p) => Some(p),
            None => match io_key.file_stem() {
                Some(stem) => store.get(&stem.to_string_lossy())?,
                None => None,
            },
        };
        let Some(p) = found else {
            let n = self
                .missing
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n < 5 {
                tracing::warn!(
                    "the proposal store has no entry for {key}: using the whole image{}",
                    if n == 4 {
                        " (further misses not logged)"
                    } else {
                        ""
                    }
                );
            }
            return Ok(Vec::new());
        };
        if p.width != 0 && (p.width as usize, p.height as usize) != (w, h) {
            bail!(
                "the proposal store's entry for {key} is {}x{} but the image is {w}x{h}: a store of another dataset?",
                p.width,
                p.height
            );
        }
        Ok(p.boxes)
    }

    /// Draws every view and box set for a `w × h` image with proposals `rects` (`[x, y, w, h]`).
    pub fn draw(&self, info: &SampleInfo, w: usize, h: usize, rects: &[[u32; 4]]) -> SocoDraw {
        let cfg = &self.cfg;
        let k = cfg.boxes_per_view;
        let mut boxes: Vec<IdBox> = rects
            .iter()
            .enumerate()
            .map(|(i, r)| IdBox::from_rect(*r, i as i32 + 1))
            .filter(|b| b.x2 >= b.x1 && b.y2 >= b.y1)
            .collect();
        if boxes.is_empty() {
            boxes.push(IdBox::from_rect([0, 0, w as u32, h as u32], 1));
        }
        let mut sel = sample_rng(info.seed, info.epoch, info.position, Stream::Method);
        let mut rng2 = sample_rng(info.seed, info.epoch, info.position, Stream::View(1));
        let mut rng3 = sample_rng(info.seed, info.epoch, info.position, Stream::View(2));
        let mut least_common = (k / 2).max(1);
        let mut chosen = None;
        for _ in 0..cfg.max_tries.max(1) {
            let c2 = random_resized_crop(&mut rng2, w, h, self.v2.scale, self.v2.ratio);
            let c3 = random_resized_crop(&mut rng3, w, h, self.v3.scale, self.v3.ratio);
            let s2 = select(&mut sel, &boxes, &c2, k);
            let s3 = select(&mut sel, &boxes, &c3, k);
            let ok = s2.len() >= least_common && s3.len() >= least_common;
            chosen = Some((c2, c3, s2, s3));
            if ok {
                break;
            }
            least_common = (least_common / 2).max(1);
        }
        let (c2, c3, s2, s3) = chosen.expect("at least one try");
        // Photometric draws (and flips) come after the geometry, from each view's stream.
        let full = CropBox::full(w, h);
        let mut rng1 = sample_rng(info.seed, info.epoch, info.position, Stream::View(0));
        let p1 = augment::draw_with_crop(&mut rng1, &self.v1, full);
        let p2 = augment::draw_with_crop(&mut rng2, &self.v2, c2);
        let p3 = augment::draw_with_crop(&mut rng3, &self.v3, c3);
        let mut views = vec![p1, p2, p3];
        if let Some(v4) = &self.v4 {
            let mut rng4 = sample_rng(info.seed, info.epoch, info.position, Stream::View(3));
            let p4 = augment::draw_with_crop(&mut rng4, v4, c2);
            views.push(ViewParams {
                flip: p2.flip,
                ..p4
            });
        }

        let jit = |rng: &mut _, s: &[IdBox]| -> Vec<IdBox> {
            s.iter()
                .map(|b| jitter(rng, *b, cfg.box_jitter_p, cfg.box_jitter_ratio))
                .collect()
        };
        let j12 = jit(&mut sel, &s2);
        let j13 = jit(&mut sel, &s3);
        let (mut b12, mut b2) = (to_view(&j12, &full), to_view(&s2, &c2));
        let (mut b13, mut b3) = (to_view(&j13, &full), to_view(&s3, &c3));
        let cutouts = [(&b2, &c2, self.v2.size), (&b3, &c3, self.v3.size)]
            .map(|(b, c, size)| self.cutouts(&mut sel, b, c, size));
        pad_pair(&mut sel, &mut b12, &mut b2, k);
        pad_pair(&mut sel, &mut b13, &mut b3, k);
        let mut sets = vec![
            normalise(&b12, &full, self.v1.size, p1.flip, cfg),
            normalise(&b2, &c2, self.v2.size, p2.flip, cfg),
            normalise(&b13, &full, self.v1.size, p1.flip, cfg),
            normalise(&b3, &c3, self.v3.size, p3.flip, cfg),
        ];
        if let Some(v4) = &self.v4 {
            sets.push(normalise(&b2, &c2, v4.size, p2.flip, cfg));
        }
        SocoDraw {
            view_params: views,
            sets,
            cutouts,
        }
    }

    /// Cutout squares (view pixels, before the flip) for the boxes of one view: per box with
    /// probability `cutout_p`, a square of `U(cutout_area)` of the box's area centred at a random
    /// point inside it.
    fn cutouts(
        &self,
        rng: &mut impl Rng,
        boxes: &[IdBox],
        crop: &CropBox,
        size: usize,
    ) -> Vec<[usize; 4]> {
        let cfg = &self.cfg;
        if cfg.cutout_p <= 0.0 {
            return Vec::new();
        }
        let (sx, sy) = (size as f64 / crop.w as f64, size as f64 / crop.h as f64);
        let mut out = Vec::new();
        for b in boxes {
            if rng.random::<f32>() >= cfg.cutout_p {
                continue;
            }
            let (x1, y1, x2, y2) = (b.x1 * sx, b.y1 * sy, (b.x2 + 1.0) * sx, (b.y2 + 1.0) * sy);
            let area = (x2 - x1)
                * (y2 - y1)
                * uniform(rng, cfg.cutout_area.0 as f64, cfg.cutout_area.1 as f64);
            let side = area.max(0.0).sqrt();
            let (cx, cy) = (uniform(rng, x1, x2), uniform(rng, y1, y2));
            let clamp = |v: f64| v.round().clamp(0.0, size as f64) as usize;
            out.push([
                clamp(cx - side / 2.0),
                clamp(cy - side / 2.0),
                clamp(cx + side / 2.0),
                clamp(cy + side / 2.0),
            ]);
        }
        out
    }

    fn needs(&self, d: &SocoDraw) -> [RegionNeed; 4] {
        let n = |i: usize| d.view_params.get(i).unwrap_or(&d.view_params[1]).need();
        [n(0), n(1), n(2), n(3)]
    }

    pub fn config(&self) -> &SocoConfig {
        &self.cfg
    }
}

/// ImageNet mean colour: SoCo's cutout zeroes normalised pixels, i.e. paints the mean.
const MEAN_RGB: [u8; 3] = [124, 116, 104];

fn paint(view: &mut [u8], size: usize, [x1, y1, x2, y2]: [usize; 4], flip: bool) {
    let (x1, x2) = if flip {
        (size - x2, size - x1)
    } else {
        (x1, x2)
    };
    for y in y1..y2 {
        for x in x1..x2 {
            view[(y * size + x) * 3..(y * size + x) * 3 + 3].copy_from_slice(&MEAN_RGB);
        }
    }
}

impl Views for Soco {
    fn schema(&self, batch_size: usize) -> Schema {
        proto_shm::schemas::soco(
            batch_size,
            self.cfg.image_size,
            self.v3.size,
            self.v4.as_ref().map(|v| v.size),
            self.cfg.boxes_per_view,
        )
    }

    fn fill(&self, info: &SampleInfo, io: &mut ImageIo, out: &mut SampleTensors) -> Result<()> {
        let img = match &self.proposals {
            Proposals::Store(store) => {
                let dataset = io.dataset.clone();
                let loaded = io.load_indexed(info, info.index, 0, |index, w, h| {
                    let d = self
                        .stored(store, &dataset.entries[index].path, w, h)
                        .map(|rects| self.draw(info, w, h, &rects));
                    let needs = match &d {
                        Ok(d) => self.needs(d),
                        Err(_) => {
                            [RegionNeed {
                                crop: CropBox::full(w, h),
                                out: (w, h),
                            }; 4]
                        }
                    };
                    (d, needs)
                })?;
                let d = loaded.plan?;
                (d, loaded.index, loaded.label, loaded.placement)
            }
            Proposals::OnTheFly => {
                // Selective search needs the full-resolution pixels: no DCT scaling.
                let loaded = io.load(info, info.index, 0, |w, h| {
                    (
                        (),
                        [RegionNeed {
                            crop: CropBox::full(w, h),
                            out: (w, h),
                        }],
                    )
                })?;
                let (w, h) = loaded.placement.full;
                let rgb = &io.images[0];
                let all = selective_search::selective_search(
                    &rgb.data,
                    w,
                    h,
                    &selective_search::Params::default(),
                );
                let (kept, _) = selective_search::filter::soco_filter(&all, w as u32, h as u32);
                let rects: Vec<[u32; 4]> = kept.iter().map(|r| [r.x, r.y, r.w, r.h]).collect();
                (
                    self.draw(info, w, h, &rects),
                    loaded.index,
                    loaded.label,
                    loaded.placement,
                )
            }
        };
        let (d, index, label, placement) = img;
        // d.view_params: V1, V2, V3 (and V4 for SoCo*); the cutouts go on V2 and V3.
        let view_names = [names::VIEW1, names::VIEW2, names::VIEW3, names::VIEW4];
        for (v, (p, name)) in d.view_params.iter().zip(view_names).enumerate() {
            let view = out.take(name);
            io.renderer
                .render_placed(&io.images[0], &placement, p, view);
            if let Some(squares) = v.checked_sub(1).and_then(|c| d.cutouts.get(c)) {
                for sq in squares {
                    paint(view, p.out.0, *sq, p.flip);
                }
            }
        }
        let k = self.cfg.boxes_per_view;
        let boxes = out.take(names::BOXES);
        let ids = out.take(names::BOX_IDS);
        let levels = out.take(names::BOX_LEVELS);
        // d.sets are in SOCO_BOX_SETS order, the rows of the box tensors.
        for (s, set) in d.sets.iter().enumerate() {
            debug_assert_eq!(set.len(), k);
            for (i, b) in set.iter().enumerate() {
                let slot = s * k + i;
                for (c, v) in b.coords.iter().enumerate() {
                    boxes[(slot * 4 + c) * 4..(slot * 4 + c) * 4 + 4]
                        .copy_from_slice(&v.to_le_bytes());
                }
                ids[slot * 4..slot * 4 + 4].copy_from_slice(&b.id.to_le_bytes());
                levels[slot] = b.level;
            }
        }
        out.take(names::INDEX)
            .copy_from_slice(&(index as i64).to_le_bytes());
        out.take(names::LABEL).copy_from_slice(&label.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
#[path = "soco_tests.rs"]
mod tests;
