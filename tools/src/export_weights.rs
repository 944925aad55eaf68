//! `export-weights`: a backbone out to the frameworks users fine-tune in — torchvision (`.pth`,
//! `.safetensors`), detectron2 (`.pkl`, with SoCo's FPN and box head) and mmsegmentation
//! (`.pth`) — from one of our checkpoints, a backbone record, or any file the importer reads
//! (so a MoCo `.pth.tar` converts to detectron2 as MoCo's own converter would).

use std::path::PathBuf;

use anyhow::{bail, Result};
use trainer::nn::resnet::{Depth, ResNetConfig};
use trainer::weights::export::{self, Format};
use trainer::weights::StateDict;

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// What to export: a checkpoint of ours (`last.ckpt`, any method), a `backbone.record`
    /// (give `--arch`), or a PyTorch-world weights file (torchvision, MoCo, mmselfsup, mmseg,
    /// SoCo, detectron2).
    #[arg(long)]
    pub from: PathBuf,
    /// Who reads the result.
    #[arg(long, value_enum)]
    pub format: Format,
    /// The file to write: `.pth` / `.safetensors` (torchvision), `.pkl` (detectron2), `.pth`
    /// (mmseg).
    #[arg(long)]
    pub out: PathBuf,
    /// The depth of a `backbone.record` (other sources say their own).
    #[arg(long, value_parser = ["resnet18", "resnet50"])]
    pub arch: Option<String>,
}

/// What was written.
pub struct Exported {
    pub tensors: usize,
    pub bytes: usize,
    pub source: String,
}

pub fn run(args: &ExportArgs) -> Result<Exported> {
    let device = trainer::backend::plain_device(config::Backend::Flex)?;
    let name = args.from.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (sd, source): (StateDict, String) = if name.ends_with(".ckpt") {
        let (sd, run) = trainer::pretrained::checkpoint_export(&args.from, args.format, &device)?;
        let arch = format!("{:?}", run.trainer.arch);
        (sd, format!("{} checkpoint ({arch})", run.method.name()))
    } else if name.ends_with(".record") {
        let depth = match args.arch.as_deref() {
            Some("resnet18") => Depth::R18,
            Some(_) => Depth::R50,
            None => bail!(
                "{}: a backbone record does not say its depth; pass --arch",
                args.from.display()
            ),
        };
        let (backbone, _) = trainer::pretrained::load_backbone(
            ResNetConfig::new(depth).init(&device),
            &args.from,
            depth,
            &device,
        )?;
        (
            export::state_dict(&backbone, None, args.format)?,
            format!("backbone record ({depth:?})"),
        )
    } else {
        let (sd, report) = export::from_weights_file(&args.from, args.format, &device)?;
        println!("{}", report.line(&args.from));
        (
            sd,
            format!(
                "{:?}-layout ResNet-{}",
                report.found.layout, report.found.depth
            ),
        )
    };
    let meta = [
        (
            "densepre_source",
            format!("{} ({source})", args.from.display()),
        ),
        ("densepre_version", env!("CARGO_PKG_VERSION").to_string()),
    ];
    let written = export::write(&sd, args.format, &args.out, &meta)?;
    Ok(Exported {
        tensors: written.tensors,
        bytes: written.bytes,
        source,
    })
}
