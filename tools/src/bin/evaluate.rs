//! `evaluate`: fine-tunes a pretrained backbone (and, to compare, a random init) on the config's
//! segmentation dataset through loader + trainer pairs, validates, and prints per-class IoU and
//! mIoU side by side (see `tools::evaluate`). Writes `eval.json`, `finetune.png` (fine-tuning loss
//! of each init, val mIoU in the legend) and each init's `predictions.png`.

use std::process::ExitCode;

use clap::Parser;
use tools::evaluate::{print_table, summary_json, Outcome};

#[derive(Parser)]
#[command(about = "Fine-tune and validate a backbone on downstream semantic segmentation")]
struct Cli {
    #[command(flatten)]
    args: tools::evaluate::EvaluateArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("evaluate: error: {e:#}");
            ExitCode::from(proto_shm::exit::FAILED)
        }
    }
}

fn run(args: &tools::evaluate::EvaluateArgs) -> anyhow::Result<u8> {
    let (out, results) = match tools::evaluate::run(args)? {
        Outcome::Done { out, results } => (out, results),
        Outcome::Stopped(code) => return Ok(code),
    };
    std::fs::create_dir_all(&out)?;
    let json = out.join("eval.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&summary_json(&results))?,
    )?;
    let plot = out.join("finetune.png");
    let curves: Vec<_> = results
        .iter()
        .map(|r| {
            (
                r.label.clone(),
                r.finetune_dir.join("metrics.jsonl"),
                r.miou(),
            )
        })
        .collect();
    trainer::metrics::plot_finetune(&curves, &plot, "fine-tuning loss (val mIoU in the legend)")?;
    println!("evaluate: validation scores");
    print_table(&results);
    let line = results
        .iter()
        .map(|r| format!("{} {:.2}", r.label, r.miou() * 100.0))
        .collect::<Vec<_>>()
        .join(" vs ");
    println!("mIoU: {line}");
    println!("  scores:      {}", json.display());
    println!("  loss plot:   {}", plot.display());
    for r in &results {
        println!(
            "  predictions ({}): {}",
            r.label,
            r.val_dir.join("predictions.png").display()
        );
    }
    Ok(proto_shm::exit::OK)
}
