//! `make-demo-data`: writes the demo's procedurally drawn images (and optionally a VOC-layout
//! segmentation set), so the demo needs nothing but this repository.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Write the demo's generated images (and a small VOC-layout segmentation set)")]
struct Cli {
    /// Folder for the pretraining images.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 96)]
    count: usize,
    /// Also write a segmentation set in PASCAL VOC layout here.
    #[arg(long)]
    voc: Option<PathBuf>,
    #[arg(long, default_value_t = 48)]
    voc_train: usize,
    #[arg(long, default_value_t = 16)]
    voc_val: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let n = tools::demo_data::write_images(&cli.out, cli.count, cli.seed)?;
    println!("demo data: {n} images in {}", cli.out.display());
    if let Some(voc) = &cli.voc {
        tools::demo_data::write_voc(voc, cli.voc_train, cli.voc_val, cli.seed)?;
        println!(
            "demo data: segmentation set ({} train, {} val) in {}",
            cli.voc_train,
            cli.voc_val,
            voc.display()
        );
    }
    Ok(())
}
