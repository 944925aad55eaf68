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

use anyhow::Result;
use clap::Parser;
use config::RunConfig;
use loader::source::Dataset;
use loader::worker::{ImageIo, SampleInfo, SkipLog};
use proto_shm::SampleBuffers;
use tools::preview::{draw_row, layout, Sheet};

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
    let (cols, size) = layout(&run.method);
    let mut sheet = Sheet::new(cols, cli.samples, size);
    let mut io = ImageIo::new(
        ds.clone(),
        Arc::new(SkipLog::default()),
        run.loader.max_decoded_pixels,
        true,
    );
    for row in 0..cli.samples {
        let info: SampleInfo = plan.sample(&perm, cli.epoch, row as u64, 0);
        let mut sample = SampleBuffers::new(&schema);
        views.fill(&info, &mut io, &mut sample.tensors())?;
        draw_row(&run.method, &sample, &mut sheet, row);
    }
    sheet.image.save(&cli.out)?;
    println!(
        "preview: {} samples of {} ({}×{} views) in {}",
        cli.samples,
        run.method.name(),
        size,
        size,
        cli.out.display()
    );
    Ok(())
}
