//! `export-weights`: writes a backbone for torchvision, detectron2 or mmsegmentation (see
//! `tools::export_weights`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Export a pretrained backbone for torchvision, detectron2 or mmsegmentation")]
struct Cli {
    #[command(flatten)]
    args: tools::export_weights::ExportArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match tools::export_weights::run(&cli.args) {
        Ok(e) => {
            println!(
                "export-weights: {} tensors ({:.1} MB) from {} → {} ({:?})",
                e.tensors,
                e.bytes as f64 / 1e6,
                e.source,
                cli.args.out.display(),
                cli.args.format
            );
            ExitCode::from(proto_shm::exit::OK)
        }
        Err(e) => {
            eprintln!("export-weights: error: {e:#}");
            ExitCode::from(proto_shm::exit::FAILED)
        }
    }
}
