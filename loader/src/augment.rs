//! One view's augmentation chain (config `ViewAugment`): draw every random parameter first from the
//! view's own stream, then render. Draw order follows torchvision's Compose for MoCo v2:
//! RandomResizedCrop, ColorJitter (applied with p), RandomGrayscale, GaussianBlur (with p),
//! Solarize (with p; SoCo), horizontal flip.

use config::ViewAugment;
use rand::Rng;

use crate::decode::{Placement, RegionNeed};
use crate::image::RgbImage;
use crate::ops::blur::Blur;
use crate::ops::color::{self, JitterParams};
use crate::ops::crop::{random_resized_crop, uniform, CropBox};
use crate::ops::flip::hflip;
use crate::ops::resize::Resizer;

/// Every random choice of one view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewParams {
    /// Crop in full-resolution source pixels.
    pub crop: CropBox,
    /// Output size (width, height).
    pub out: (usize, usize),
    pub jitter: Option<JitterParams>,
    pub grayscale: bool,
    pub blur_sigma: Option<f32>,
    pub solarize: Option<u8>,
    pub flip: bool,
}

impl ViewParams {
    pub fn need(&self) -> RegionNeed {
        RegionNeed {
            crop: self.crop,
            out: self.out,
        }
    }
}

fn coin(rng: &mut impl Rng, p: f32) -> bool {
    // `torch.rand(1) < p`: never true for p = 0, always for p = 1.
    p > 0.0 && (p >= 1.0 || rng.random::<f32>() < p)
}

/// Draws a view with a random resized crop of a `width × height` source.
pub fn draw(rng: &mut impl Rng, cfg: &ViewAugment, width: usize, height: usize) -> ViewParams {
    let crop = random_resized_crop(rng, width, height, cfg.scale, cfg.ratio);
    draw_with_crop(rng, cfg, crop)
}

/// Draws the photometric part of a view whose crop is already fixed (e.g. SoCo's whole-image V1).
pub fn draw_with_crop(rng: &mut impl Rng, cfg: &ViewAugment, crop: CropBox) -> ViewParams {
    let jitter = coin(rng, cfg.color_jitter.p).then(|| JitterParams::draw(rng, &cfg.color_jitter));
    let grayscale = coin(rng, cfg.grayscale_p);
    let blur_sigma = coin(rng, cfg.blur_p)
        .then(|| uniform(rng, cfg.blur_sigma.0 as f64, cfg.blur_sigma.1 as f64) as f32);
    let solarize = coin(rng, cfg.solarize_p).then_some(cfg.solarize_threshold);
    let flip = coin(rng, cfg.flip_p);
    ViewParams {
        crop,
        out: (cfg.size, cfg.size),
        jitter,
        grayscale,
        blur_sigma,
        solarize,
        flip,
    }
}

/// A full-resolution crop mapped into an image decoded at a reduced scale: its sub-pixel box
/// (x0, y0)–(x1, y1) and the whole pixels that box touches, [ix0, ix1) × [iy0, iy1) (all the
/// resize reads).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledCrop {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
    pub ix0: usize,
    pub iy0: usize,
    pub ix1: usize,
    pub iy1: usize,
}

impl ScaledCrop {
    pub fn new(c: CropBox, full: (usize, usize), scaled: (usize, usize)) -> ScaledCrop {
        let sx = scaled.0 as f64 / full.0 as f64;
        let sy = scaled.1 as f64 / full.1 as f64;
        let (x0, x1) = (
            c.x as f64 * sx,
            ((c.x + c.w) as f64 * sx).min(scaled.0 as f64),
        );
        let (y0, y1) = (
            c.y as f64 * sy,
            ((c.y + c.h) as f64 * sy).min(scaled.1 as f64),
        );
        let (ix0, iy0) = (x0.floor() as usize, y0.floor() as usize);
        ScaledCrop {
            x0,
            y0,
            x1,
            y1,
            ix0,
            iy0,
            ix1: (x1.ceil() as usize).max(ix0 + 1),
            iy1: (y1.ceil() as usize).max(iy0 + 1),
        }
    }
}

/// The pixels of the image decoded at `scaled` size that rendering crop `c` reads:
/// (x, y, w, h) in scaled pixels.
pub fn source_rect(
    c: CropBox,
    full: (usize, usize),
    scaled: (usize, usize),
) -> (usize, usize, usize, usize) {
    if scaled == full {
        (c.x, c.y, c.w, c.h)
    } else {
        let m = ScaledCrop::new(c, full, scaled);
        (m.ix0, m.iy0, m.ix1 - m.ix0, m.iy1 - m.iy0)
    }
}

/// The smallest rectangle of the image decoded at `scaled` size holding what every one of `needs`
/// reads (`source_rect`): (x, y, w, h) in scaled pixels; `None` for no needs.
pub fn needed_rect(
    needs: &[RegionNeed],
    full: (usize, usize),
    scaled: (usize, usize),
) -> Option<(usize, usize, usize, usize)> {
    needs
        .iter()
        .map(|n| source_rect(n.crop, full, scaled))
        .reduce(|a, b| {
            let (x0, y0) = (a.0.min(b.0), a.1.min(b.1));
            let (x1, y1) = ((a.0 + a.2).max(b.0 + b.2), (a.1 + a.3).max(b.1 + b.3));
            (x0, y0, x1 - x0, y1 - y0)
        })
}

/// Per-worker render buffers.
#[derive(Debug, Default)]
pub struct Renderer {
    resizer: Resizer,
    blur: Blur,
}

impl Renderer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Renders `p` from `src` into `out` (packed RGB, `p.out` size). `src` may be the source decoded
    /// at a reduced DCT scale: `full` is the source's full-resolution size, and the crop is mapped
    /// into `src` coordinates with sub-pixel precision. At full scale the result is exactly
    /// torchvision's crop-then-resize.
    pub fn render(&mut self, src: &RgbImage, full: (usize, usize), p: &ViewParams, out: &mut [u8]) {
        self.render_placed(src, &Placement::whole(full, src), p, out);
    }

    /// [`Renderer::render`] from pixels that may be only a rectangle of the (scaled) source, as
    /// `placement` says; the result is the same as from the whole decode as long as the rectangle
    /// holds `source_rect(p.crop, …)` (what the loader decodes).
    pub fn render_placed(
        &mut self,
        src: &RgbImage,
        placement: &Placement,
        p: &ViewParams,
        out: &mut [u8],
    ) {
        let (ow, oh) = p.out;
        let (ox, oy) = placement.origin;
        let c = p.crop;
        if placement.scaled == placement.full {
            let view = src.view().crop(c.x - ox, c.y - oy, c.w, c.h);
            self.resizer
                .resize(view, [0.0, 0.0, c.w as f64, c.h as f64], ow, oh, out);
        } else {
            let m = ScaledCrop::new(c, placement.full, placement.scaled);
            let view = src
                .view()
                .crop(m.ix0 - ox, m.iy0 - oy, m.ix1 - m.ix0, m.iy1 - m.iy0);
            let b = [
                m.x0 - m.ix0 as f64,
                m.y0 - m.iy0 as f64,
                m.x1 - m.ix0 as f64,
                m.y1 - m.iy0 as f64,
            ];
            self.resizer.resize(view, b, ow, oh, out);
        }
        self.photometric(p, out);
    }

    /// Pillow's bilinear resampling of `box_` of `src` to `out_w × out_h` (see `Resizer::resize`).
    pub fn resize(
        &mut self,
        src: crate::image::ImageView,
        box_: [f64; 4],
        out_w: usize,
        out_h: usize,
        out: &mut [u8],
    ) {
        self.resizer.resize(src, box_, out_w, out_h, out);
    }

    /// Colour, blur, solarize and flip of an already resized view, in place.
    pub fn photometric(&mut self, p: &ViewParams, out: &mut [u8]) {
        let (ow, oh) = p.out;
        if let Some(j) = &p.jitter {
            j.apply(out);
        }
        if p.grayscale {
            color::grayscale(out);
        }
        if let Some(s) = p.blur_sigma {
            self.blur.gaussian(out, ow, oh, s);
        }
        if let Some(t) = p.solarize {
            color::solarize(out, t);
        }
        if p.flip {
            hflip(out, ow);
        }
    }
}
