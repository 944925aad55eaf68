//! `preview`: a PNG contact sheet of what the network will see for N samples of a run — each row
//! one sample's views as the loader writes them into the ring (before normalisation). CP²
//! composites get the pasted window's outline (yellow) and its OS16 cell centres (red dots). Patch
//! rotation shows the rotated view with its grid (cyan) and, beside it, the same view with every
//! patch turned back by its label — what the labels mean, made visible. SoCo shows V1 with the
//! boxes it pairs with V2, V2, V1 with the boxes it pairs with V3, V3 (and V4 for SoCo*), each box
//! outlined in its id's colour and labelled with its FPN level (P2–P5): the same colour in two
//! tiles of a pair is the same object.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Parser;
use config::{MethodConfig, RunConfig};
use loader::source::Dataset;
use loader::worker::{ImageIo, SampleInfo, SkipLog};

#[derive(Parser)]
#[command(about = "Contact sheet (PNG) of a run's views")]
struct Cli {
    #[arg(long)]
    config: PathBuf,
    #[arg(long, default_value_t = 6)]
    samples: usize,
    #[arg(long, default_value_t = 0)]
    epoch: u64,
    #[arg(long)]
    out: PathBuf,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let run = RunConfig::from_file(&cli.config)?;
    let ds = Arc::new(Dataset::open(&run.dataset)?);
    let views = loader::views::for_run(&run)?;
    let schema = views.schema(1);
    let plan = loader::pipeline::StreamPlan {
        seed: run.seed,
        rank: 0,
        world_size: 1,
        batch_size: 1,
        dataset_len: ds.len(),
    };
    let perm = plan.permutation(cli.epoch);
    let size = schema.tensors[0].shape[0];
    let is_cp2 = matches!(run.method, MethodConfig::Cp2(_));
    let stride = match &run.method {
        MethodConfig::Cp2(c) => c.output_stride,
        _ => 0,
    };
    let pad = 4;
    let soco_sets = match &run.method {
        MethodConfig::Soco(c) => Some((if c.star { 5 } else { 4 }, c.boxes_per_view)),
        _ => None,
    };
    let (cols, rows) = (soco_sets.map_or(2, |s| s.0), cli.samples);
    let (sw, sh) = (cols * (size + pad) + pad, rows * (size + pad) + pad);
    let mut sheet = image::RgbImage::from_pixel(sw as u32, sh as u32, image::Rgb([40, 40, 40]));
    let mut io = ImageIo::new(
        ds.clone(),
        Arc::new(SkipLog::default()),
        run.loader.max_decoded_pixels,
        true,
    );
    let plr_grid = match &run.method {
        MethodConfig::PatchRotation(p) => Some(p.grid),
        _ => None,
    };
    if plr_grid.is_none()
        && soco_sets.is_none()
        && (schema.tensors.len() < 2 || schema.tensors[1].shape.len() != 3)
    {
        bail!(
            "preview shows two image views per sample; {} has another layout",
            run.method.name()
        );
    }
    for row in 0..rows {
        let info: SampleInfo = plan.sample(&perm, cli.epoch, row as u64, 0);
        let mut bufs: Vec<Vec<u8>> = schema
            .tensors
            .iter()
            .map(|t| vec![0u8; t.sample_bytes()])
            .collect();
        {
            let mut out: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
            views.fill(&info, &mut io, &mut out)?;
        }
        if let Some((sets, k)) = soco_sets {
            let views = sets - 1;
            let boxes: Vec<f32> = f32s(&bufs[views]);
            let ids: Vec<i32> = bufs[views + 1]
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            for (col, view) in [0usize, 1, 0, 2, 3].into_iter().take(sets).enumerate() {
                let vsize = schema.tensors[view].shape[0];
                let (ox, oy) = (pad + col * (size + pad), pad + row * (size + pad));
                for y in 0..vsize {
                    for x in 0..vsize {
                        let i = (y * vsize + x) * 3;
                        let px = [bufs[view][i], bufs[view][i + 1], bufs[view][i + 2]];
                        sheet.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(px));
                    }
                }
                for slot in 0..k {
                    let j = col * k + slot;
                    let b: Vec<usize> = boxes[j * 4..j * 4 + 4]
                        .iter()
                        .map(|c| ((c * vsize as f32).round() as usize).min(vsize - 1))
                        .collect();
                    let colour = PALETTE[ids[j].unsigned_abs() as usize % PALETTE.len()];
                    outline(&mut sheet, ox, oy, &b, colour);
                    let level = bufs[views + 2][j];
                    label(&mut sheet, ox + b[0] + 2, oy + b[1] + 2, level, colour);
                }
            }
            continue;
        }
        if let Some(g) = plr_grid {
            // Column 2: the view with every patch turned back by its label.
            let p = size / g;
            let mut restored = bufs[0].clone();
            let mut tmp = Vec::new();
            for (k, &r) in bufs[1].clone().iter().enumerate() {
                loader::views::patch_rotation::rotate_patch(
                    &mut restored,
                    size,
                    (k % g) * p,
                    (k / g) * p,
                    p,
                    (4 - r) % 4,
                    &mut tmp,
                );
            }
            bufs[1] = restored;
        }
        for v in 0..cols {
            let (ox, oy) = (pad + v * (size + pad), pad + row * (size + pad));
            let img = &bufs[v];
            for y in 0..size {
                for x in 0..size {
                    let i = (y * size + x) * 3;
                    let mut px = [img[i], img[i + 1], img[i + 2]];
                    if let Some(g) = plr_grid {
                        let p = size / g;
                        if v == 0 && (x % p == 0 || y % p == 0) {
                            px = [0, 220, 230];
                        }
                    }
                    if is_cp2 {
                        let mask = &bufs[2 + v];
                        let m = |yy: usize, xx: usize| mask[yy * size + xx];
                        let edge = m(y, x) == 1
                            && (x == 0
                                || y == 0
                                || x + 1 == size
                                || y + 1 == size
                                || m(y, x - 1) == 0
                                || m(y, x + 1) == 0
                                || m(y - 1, x) == 0
                                || m(y + 1, x) == 0);
                        if edge {
                            px = [255, 220, 0];
                        }
                        let (cx, cy) = (x % stride, y % stride);
                        if m(y, x) == 1
                            && (cx as i32 - (stride / 2) as i32).abs() <= 1
                            && (cy as i32 - (stride / 2) as i32).abs() <= 1
                        {
                            px = [230, 30, 30];
                        }
                    }
                    sheet.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(px));
                }
            }
        }
    }
    sheet.save(&cli.out)?;
    println!(
        "preview: {} samples of {} ({}×{} views) in {}",
        rows,
        run.method.name(),
        size,
        size,
        cli.out.display()
    );
    Ok(())
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
