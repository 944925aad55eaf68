//! The drawing behind `preview`: a PNG contact sheet of what the network will see for N samples of a run — each row
//! one sample's views as the loader writes them into the ring (before normalisation). CP²
//! composites get the pasted window's outline (yellow) and its OS16 cell centres (red dots). Patch
//! rotation shows the rotated view with its grid (cyan) and, beside it, the same view with every
//! patch turned back by its label — what the labels mean, made visible. SoCo shows V1 with the
//! boxes it pairs with V2, V2, V1 with the boxes it pairs with V3, V3 (and V4 for SoCo*), each box
//! outlined in its id's colour and labelled with its FPN level (P2–P5): the same colour in two
//! tiles of a pair is the same object.

//!
//! One drawing function per view layout, each reading the sample's tensors by schema name.

use config::MethodConfig;
use proto_shm::schemas::{names, SOCO_BOX_SETS};
use proto_shm::SampleBuffers;

/// Gap between tiles, pixels.
const PAD: usize = 4;

/// A grid of square tiles of `size` pixels.
pub struct Sheet {
    pub image: image::RgbImage,
    size: usize,
}

impl Sheet {
    pub fn new(cols: usize, rows: usize, size: usize) -> Sheet {
        let (w, h) = (cols * (size + PAD) + PAD, rows * (size + PAD) + PAD);
        Sheet {
            image: image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([40, 40, 40])),
            size,
        }
    }

    /// Top-left pixel of tile (row, col).
    fn origin(&self, row: usize, col: usize) -> (usize, usize) {
        (PAD + col * (self.size + PAD), PAD + row * (self.size + PAD))
    }

    /// Copies an RGB image of `side`² into tile (row, col), `tint` deciding each pixel's colour.
    fn put(
        &mut self,
        row: usize,
        col: usize,
        rgb: &[u8],
        side: usize,
        tint: impl Fn(usize, usize, [u8; 3]) -> [u8; 3],
    ) {
        let (ox, oy) = self.origin(row, col);
        for y in 0..side {
            for x in 0..side {
                let i = (y * side + x) * 3;
                let px = tint(x, y, [rgb[i], rgb[i + 1], rgb[i + 2]]);
                self.image
                    .put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(px));
            }
        }
    }
}

impl Sheet {
    /// Copies a `w × h` RGB image into the top-left of tile (row, col) (cropped to the tile).
    pub fn put_rect(&mut self, row: usize, col: usize, rgb: &[u8], w: usize, h: usize) {
        let (ox, oy) = self.origin(row, col);
        for y in 0..h.min(self.size) {
            for x in 0..w.min(self.size) {
                let i = (y * w + x) * 3;
                self.image.put_pixel(
                    (ox + x) as u32,
                    (oy + y) as u32,
                    image::Rgb([rgb[i], rgb[i + 1], rgb[i + 2]]),
                );
            }
        }
    }
}

/// Tiles per row and tile size for a run's method (`size`: its main view's side).
pub fn layout(method: &MethodConfig) -> (usize, usize) {
    match method {
        MethodConfig::MocoV2(m) => (2, m.view.size),
        MethodConfig::DenseCl(d) => (2, d.moco.view.size),
        MethodConfig::PatchMoco(p) => (2, p.moco.view.size),
        MethodConfig::EdMoco(e) => (2, e.moco.view.size),
        MethodConfig::Cp2(c) => (2, c.view.size),
        MethodConfig::PatchRotation(p) => (2, p.view.size),
        MethodConfig::Soco(s) => (if s.star { 5 } else { 4 }, s.image_size),
        MethodConfig::Segmentation(s) => {
            let (h, w) = match s.phase {
                config::SegPhase::Finetune => s.crop,
                config::SegPhase::Validate { .. } => s.val_slot,
            };
            (2, h.max(w))
        }
    }
}

/// Draws one sample's views as row `row` of the sheet.
pub fn draw_row(method: &MethodConfig, sample: &SampleBuffers, sheet: &mut Sheet, row: usize) {
    match method {
        MethodConfig::MocoV2(_)
        | MethodConfig::DenseCl(_)
        | MethodConfig::EdMoco(_)
        | MethodConfig::PatchMoco(_) => two_views(sample, sheet, row),
        MethodConfig::Cp2(c) => cp2(sample, sheet, row, c.output_stride),
        MethodConfig::PatchRotation(p) => patch_rotation(sample, sheet, row, p.grid),
        MethodConfig::Soco(s) => soco(sample, sheet, row, s.boxes_per_view),
        MethodConfig::Segmentation(_) => segmentation(sample, sheet, row),
    }
}

/// A segmentation sample: the image (padding dark) and its label map in the class palette, with
/// the real extent outlined.
fn segmentation(sample: &SampleBuffers, sheet: &mut Sheet, row: usize) {
    let spec = &sample.schema().tensors[sample.schema().tensor_index(names::VIEW0).unwrap()];
    let (h, w) = (spec.shape[0], spec.shape[1]);
    let image = sample.get(names::VIEW0);
    let labels = sample.get(names::SEG_LABEL);
    let coloured: Vec<u8> = labels
        .iter()
        .flat_map(|&c| config::class_colour(c))
        .collect();
    sheet.put_rect(row, 0, image, w, h);
    sheet.put_rect(row, 1, &coloured, w, h);
}

fn two_views(sample: &SampleBuffers, sheet: &mut Sheet, row: usize) {
    let size = sheet.size;
    for (col, name) in [names::VIEW0, names::VIEW1].into_iter().enumerate() {
        sheet.put(row, col, sample.get(name), size, |_, _, px| px);
    }
}

/// The composites with their window outline (yellow) and OS16 cell centres (red).
fn cp2(sample: &SampleBuffers, sheet: &mut Sheet, row: usize, stride: usize) {
    let size = sheet.size;
    for (col, (view, mask)) in [(names::VIEW0, names::MASK0), (names::VIEW1, names::MASK1)]
        .into_iter()
        .enumerate()
    {
        let mask = sample.get(mask);
        let m = |yy: usize, xx: usize| mask[yy * size + xx];
        sheet.put(row, col, sample.get(view), size, |x, y, px| {
            let inside = m(y, x) == 1;
            let edge = inside
                && (x == 0
                    || y == 0
                    || x + 1 == size
                    || y + 1 == size
                    || m(y, x - 1) == 0
                    || m(y, x + 1) == 0
                    || m(y - 1, x) == 0
                    || m(y + 1, x) == 0);
            let (cx, cy) = (x % stride, y % stride);
            let centre = (cx as i32 - (stride / 2) as i32).abs() <= 1
                && (cy as i32 - (stride / 2) as i32).abs() <= 1;
            if inside && centre {
                [230, 30, 30]
            } else if edge {
                [255, 220, 0]
            } else {
                px
            }
        });
    }
}

/// The rotated view with its grid (cyan), and beside it every patch turned back by its label.
fn patch_rotation(sample: &SampleBuffers, sheet: &mut Sheet, row: usize, grid: usize) {
    let size = sheet.size;
    let p = size / grid;
    let view = sample.get(names::VIEW0);
    sheet.put(row, 0, view, size, |x, y, px| {
        if x % p == 0 || y % p == 0 {
            [0, 220, 230]
        } else {
            px
        }
    });
    let mut restored = view.to_vec();
    let mut tmp = Vec::new();
    for (k, &r) in sample.get(names::ROTATION).iter().enumerate() {
        loader::views::patch_rotation::rotate_patch(
            &mut restored,
            size,
            (k % grid) * p,
            (k / grid) * p,
            p,
            (4 - r) % 4,
            &mut tmp,
        );
    }
    sheet.put(row, 1, &restored, size, |_, _, px| px);
}

/// SoCo: one tile per box set (V1 for V2, V2, V1 for V3, V3, V4), boxes in their id's colour,
/// labelled with their FPN level.
fn soco(sample: &SampleBuffers, sheet: &mut Sheet, row: usize, k: usize) {
    let boxes = f32s(sample.get(names::BOXES));
    let ids: Vec<i32> = sample
        .get(names::BOX_IDS)
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let levels = sample.get(names::BOX_LEVELS);
    let sets = sample.schema().tensor_index(names::VIEW4).map_or(4, |_| 5);
    for (col, set) in SOCO_BOX_SETS.iter().take(sets).enumerate() {
        let view = match *set {
            "v1_for_v2" | "v1_for_v3" => names::VIEW1,
            "v2" => names::VIEW2,
            "v3" => names::VIEW3,
            _ => names::VIEW4,
        };
        let spec = &sample.schema().tensors[sample.schema().tensor_index(view).unwrap()];
        let vsize = spec.shape[0];
        sheet.put(row, col, sample.get(view), vsize, |_, _, px| px);
        let (ox, oy) = sheet.origin(row, col);
        for slot in 0..k {
            let j = col * k + slot;
            let b: Vec<usize> = boxes[j * 4..j * 4 + 4]
                .iter()
                .map(|c| ((c * vsize as f32).round() as usize).min(vsize - 1))
                .collect();
            let colour = PALETTE[ids[j].unsigned_abs() as usize % PALETTE.len()];
            outline(&mut sheet.image, ox, oy, &b, colour);
            label(
                &mut sheet.image,
                ox + b[0] + 2,
                oy + b[1] + 2,
                levels[j],
                colour,
            );
        }
    }
}

/// Box colours by id (distinct hues; id 0, the whole-view fallback, is white).
const PALETTE: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 60, 60],
    [60, 220, 60],
    [70, 130, 255],
    [255, 200, 0],
    [230, 70, 230],
    [0, 220, 220],
    [255, 140, 0],
];

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// A 2-pixel outline of box `[x1, y1, x2, y2]` (tile pixels) at tile origin `(ox, oy)`.
fn outline(sheet: &mut image::RgbImage, ox: usize, oy: usize, b: &[usize], c: [u8; 3]) {
    let mut put = |x: usize, y: usize| {
        let (x, y) = ((ox + x) as u32, (oy + y) as u32);
        if x < sheet.width() && y < sheet.height() {
            sheet.put_pixel(x, y, image::Rgb(c));
        }
    };
    for t in 0..2 {
        for x in b[0]..=b[2] {
            put(x, b[1] + t);
            put(x, b[3].saturating_sub(t));
        }
        for y in b[1]..=b[3] {
            put(b[0] + t, y);
            put(b[2].saturating_sub(t), y);
        }
    }
}

/// 3×5 bitmaps (rows top to bottom, 3 bits each) of "P" and the digits 2–5.
const GLYPHS: [[u8; 5]; 5] = [
    [0b110, 0b101, 0b110, 0b100, 0b100],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
];

/// Writes "P2".."P5" for FPN level `level` (0..3) at twice the glyph size, on a dark backing.
fn label(sheet: &mut image::RgbImage, x: usize, y: usize, level: u8, c: [u8; 3]) {
    let glyphs = [0usize, 1 + level.min(3) as usize];
    for (g, &glyph) in glyphs.iter().enumerate() {
        for (row, bits) in GLYPHS[glyph].iter().enumerate() {
            for col in 0..3 {
                let on = bits >> (2 - col) & 1 == 1;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let (px, py) = ((x + g * 8 + col * 2 + dx) as u32, (y + row * 2 + dy) as u32);
                    if px < sheet.width() && py < sheet.height() {
                        sheet.put_pixel(px, py, image::Rgb(if on { c } else { [0, 0, 0] }));
                    }
                }
            }
        }
    }
}
