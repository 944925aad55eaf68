//! `preview`: a PNG contact sheet of what the network will see for N samples of a run — each row
//! one sample's views as the loader writes them into the ring (before normalisation). CP²
//! composites get the pasted window's outline (yellow) and its OS16 cell centres (red dots). Patch
//! rotation shows the rotated view with its grid (cyan) and, beside it, the same view with every
//! patch turned back by its label — what the labels mean, made visible.

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
    let (cols, rows) = (2usize, cli.samples);
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
    if plr_grid.is_none() && (schema.tensors.len() < 2 || schema.tensors[1].shape.len() != 3) {
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
