//! `profile-throughput`: loader samples/s measured side by side with the references, in one run.
//!
//! For a folder of images it measures, each in a fresh child process (so peak RSS is its own):
//!   * `rust`: the loader's pipeline of `--method` (MoCo v2 two views, SoCo views + boxes from a
//!     proposal store, CP² composites) through a real ring (workers write slots in place, a consumer
//!     thread releases them), for each requested worker count;
//!   * `decode`: decode-only with libjpeg-turbo, one thread, full resolution;
//!   * `python`: the same pipeline in Pillow + numpy (tests/reference/{moco,soco,cp2}_pipeline.py),
//!     one process (SoCo's reads the store's boxes as SoCo's JSON); for `segmentation` (mmseg's
//!     train pipeline on a VOC-layout `--data`, crops of `--size`) OpenCV + numpy as mmseg runs it
//!     (tests/reference/seg_pipeline.py).
//!
//! It prints a table with ratios and peak RSS, ready for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use config::{Cp2Config, DatasetConfig, DatasetLayout, MocoV2Config, SocoConfig, ViewAugment};
use loader::pipeline::{run_pool, PoolOptions, StreamPlan, StreamRange};
use loader::proposals::ProposalStore;
use loader::source::Dataset;
use loader::views::cp2::Cp2;
use loader::views::soco::{Proposals, Soco};
use loader::views::{TwoCrop, Views};
use proto_shm::{Consumer, Producer, ShmOptions};

#[derive(Parser)]
#[command(about = "Loader throughput vs decode-only and the Pillow reference, in one run")]
struct Cli {
    /// Folder of images (flat).
    #[arg(long)]
    data: PathBuf,
    /// Samples per measurement.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Worker counts to measure the Rust pipeline with.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// View size.
    #[arg(long, default_value_t = 224)]
    size: usize,
    /// Python with Pillow and numpy (scripts/setup.sh --python makes .venv).
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
    /// Which pipeline: mocov2, soco, cp2 or segmentation (--data is then a VOC-layout root).
    #[arg(long, default_value = "mocov2")]
    method: String,
    /// SoCo: the proposal store of --data (tools/precompute-proposals run --data DIR --out STORE).
    #[arg(long)]
    proposals: Option<PathBuf>,
    /// Folder of the Python reference pipelines.
    #[arg(long, default_value = "tests/reference")]
    reference_dir: PathBuf,
    /// Interleaved rounds of every measurement (decode, Python, ours); rates are the medians over
    /// rounds and ratios the medians of the per-round ratios, so a machine whose speed drifts
    /// during the run still gives paired comparisons.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Internal: run one measurement and print a JSON line.
    #[arg(long, hide = true)]
    one: Option<String>,
    #[arg(long, hide = true, default_value_t = 1)]
    one_workers: usize,
    /// Decode JPEGs at full resolution only (no DCT-domain downscaling).
    #[arg(long)]
    no_dct_scaling: bool,
    /// Decode whole JPEGs, not only the rectangle the views read.
    #[arg(long)]
    no_partial_decode: bool,
    /// Instead: time listing an ImageFolder tree of this many empty files in 1000 classes (made
    /// under --data), cold and from the index cache.
    #[arg(long)]
    listing: Option<usize>,
}

fn measure_listing(root: &Path, files: usize) -> Result<()> {
    let split = root.join("train");
    let per_class = files.div_ceil(1000);
    if !split.join("n0999").is_dir() {
        let t = Instant::now();
        let mut made = 0;
        for c in 0..1000 {
            let d = split.join(format!("n{c:04}"));
            std::fs::create_dir_all(&d)?;
            for i in 0..per_class.min(files - made) {
                std::fs::File::create(d.join(format!("n{c:04}_{i}.JPEG")))?;
            }
            made += per_class.min(files - made);
        }
        println!("made {made} files in {:.1} s", t.elapsed().as_secs_f64());
    }
    let cache = root.join("index-cache");
    let _ = std::fs::remove_dir_all(&cache);
    std::env::set_var("DENSEPRE_CACHE_DIR", &cache);
    let cfg = DatasetConfig {
        root: root.to_path_buf(),
        layout: DatasetLayout::ImageFolder {
            split: "train".into(),
        },
        proposals: None,
        max_images: None,
    };
    // Drop the kernel's dentry/inode caches when we may (root), so "cold" means cold.
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "2").is_ok();
    let t = Instant::now();
    let ds = Dataset::open(&cfg)?;
    let cold = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let again = Dataset::open(&cfg)?;
    let warm = t.elapsed().as_secs_f64();
    assert!(again.from_cache && again.len() == ds.len());
    println!(
        "listing {} files in {} classes: walk {cold:.2} s ({}), from the index cache {warm:.2} s; peak RSS {:.0} MiB",
        ds.len(),
        ds.classes.len(),
        if dropped { "dentry cache dropped first" } else { "dentry cache warm" },
        peak_rss_mib()
    );
    Ok(())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn dataset(dir: &Path) -> Result<Arc<Dataset>> {
    Ok(Arc::new(Dataset::open(&DatasetConfig {
        root: dir.to_path_buf(),
        layout: DatasetLayout::Flat,
        proposals: None,
        max_images: None,
    })?))
}

/// The segmentation run of `--data` (VOC layout, train split): mmseg's VOC protocol with crops
/// of `--size`.
fn segmentation_run(cli: &Cli) -> Result<config::RunConfig> {
    let mut run = config::RunConfig::from_str(
        "(name: \"profile\", dataset: (root: \".\"), method: MocoV2())",
        "profile-throughput",
    )?;
    run.dataset = DatasetConfig {
        root: cli.data.clone(),
        layout: DatasetLayout::Segmentation {
            format: config::SegFormat::default(),
            split: "train".into(),
        },
        proposals: None,
        max_images: None,
    };
    run.method = config::MethodConfig::Segmentation(config::SegmentationConfig {
        classes: 255,
        crop: (cli.size, cli.size),
        ..Default::default()
    });
    Ok(run)
}

fn measure_rust(cli: &Cli, workers: usize) -> Result<(f64, f64)> {
    let ds = if cli.method == "segmentation" {
        Arc::new(Dataset::open(&segmentation_run(cli)?.dataset)?)
    } else {
        dataset(&cli.data)?
    };
    let views: Box<dyn Views> = match cli.method.as_str() {
        "segmentation" => {
            let run = segmentation_run(cli)?;
            let config::MethodConfig::Segmentation(seg) = run.method.clone() else {
                unreachable!()
            };
            Box::new(loader::views::segmentation::Segmentation::open(&run, seg)?)
        }
        "mocov2" => Box::new(TwoCrop::new(
            "mocov2",
            ViewAugment {
                size: cli.size,
                ..MocoV2Config::default().view
            },
        )),
        "soco" => Box::new(Soco::new(
            SocoConfig {
                image_size: cli.size,
                v3_size: cli.size / 2,
                ..SocoConfig::default()
            },
            Proposals::Store(ProposalStore::open(
                cli.proposals
                    .as_ref()
                    .context("--method soco needs --proposals")?,
            )?),
        )),
        "cp2" => Box::new(Cp2::new(Cp2Config {
            view: ViewAugment {
                size: cli.size,
                ..ViewAugment::default()
            },
            ..Cp2Config::default()
        })),
        other => bail!("unknown --method {other} (mocov2, soco, cp2, segmentation)"),
    };
    let views = views.as_ref();
    let batch = 32;
    let batches = cli.samples.div_ceil(batch) as u64;
    let schema = views.schema(batch);
    let name = format!("profile-throughput-{}", std::process::id());
    let producer = Producer::create(&name, &schema, 4, &ShmOptions::default())?;
    let consumer_schema = schema.clone();
    let consumer = std::thread::spawn(move || -> Result<u64> {
        let mut c = Consumer::open(&name, &consumer_schema, &ShmOptions::default())?;
        let mut n = 0;
        while let Some(b) = c.next_batch()? {
            n += b.tensor(0)[0] as u64;
        }
        Ok(n)
    });
    let plan = StreamPlan {
        seed: 0,
        rank: 0,
        world_size: 1,
        batch_size: batch,
        dataset_len: ds.len(),
    };
    let range = StreamRange {
        start_epoch: 0,
        start_batch: 0,
        end_epoch: u64::MAX,
        max_batches: Some(batches),
    };
    let opts = PoolOptions {
        workers,
        max_decoded_pixels: 89_478_485,
        dct_scaling: !cli.no_dct_scaling,
        partial_decode: !cli.no_partial_decode,
    };
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (stats, stopped) = run_pool(&producer, views, ds, plan, range, &opts, &stop, &|_| {});
    if let Some(s) = stopped {
        bail!("pipeline stopped: {s}");
    }
    producer.finish()?;
    consumer.join().unwrap()?;
    let secs = start.elapsed().as_secs_f64();
    Ok((stats.samples as f64 / secs, peak_rss_mib()))
}

fn measure_decode(cli: &Cli) -> Result<(f64, f64)> {
    let ds = if cli.method == "segmentation" {
        dataset(&cli.data.join("JPEGImages"))?
    } else {
        dataset(&cli.data)?
    };
    let mut dec = loader::decode::Decoder::new(89_478_485);
    let mut img = loader::image::RgbImage::default();
    let start = Instant::now();
    for i in 0..cli.samples {
        // Read from disk (page cache) as the pipelines do.
        let bytes = std::fs::read(ds.path_of(i % ds.len()))?;
        dec.decode_full(&bytes, &mut img)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok((
        cli.samples as f64 / start.elapsed().as_secs_f64(),
        peak_rss_mib(),
    ))
}

fn child(cli: &Cli, what: &str, workers: usize) -> Result<(f64, f64)> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--data")
        .arg(&cli.data)
        .args(["--samples", &cli.samples.to_string()]);
    cmd.args(["--method", &cli.method]);
    if let Some(p) = &cli.proposals {
        cmd.arg("--proposals").arg(p);
    }
    cmd.args([
        "--size",
        &cli.size.to_string(),
        "--one",
        what,
        "--one-workers",
        &workers.to_string(),
    ]);
    if cli.no_partial_decode {
        cmd.arg("--no-partial-decode");
    }
    if cli.no_dct_scaling {
        cmd.arg("--no-dct-scaling");
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "{what} measurement failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_line(&String::from_utf8_lossy(&out.stdout))
}

fn parse_line(s: &str) -> Result<(f64, f64)> {
    let v: serde_json::Value = serde_json::from_str(s.lines().last().context("no output")?.trim())?;
    Ok((
        v["samples_per_s"].as_f64().context("samples_per_s")?,
        v["peak_rss_mib"].as_f64().context("peak_rss_mib")?,
    ))
}

/// One run of the Python reference pipeline of `--method`: (samples/s, peak RSS MiB). SoCo's
/// reference reads its proposals from `soco_json` (exported once per run by `main`).
fn run_python(cli: &Cli, soco_json: Option<&Path>) -> Result<(f64, f64)> {
    let script = match cli.method.as_str() {
        "mocov2" => "moco_pipeline.py",
        "soco" => "soco_pipeline.py",
        "segmentation" => "seg_pipeline.py",
        _ => "cp2_pipeline.py",
    };
    let mut cmd = Command::new(&cli.python);
    cmd.arg(cli.reference_dir.join(script))
        .arg(&cli.data)
        .arg(cli.samples.to_string());
    if let Some(json) = soco_json {
        cmd.arg(json);
    }
    let out = cmd.arg(cli.size.to_string()).output().with_context(|| {
        format!(
            "running {} (make it with scripts/setup.sh --python)",
            cli.python.display()
        )
    })?;
    if !out.status.success() {
        bail!(
            "python reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_line(&String::from_utf8_lossy(&out.stdout))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(what) = &cli.one {
        let (rate, rss) = match what.as_str() {
            "rust" => measure_rust(&cli, cli.one_workers)?,
            "decode" => measure_decode(&cli)?,
            other => bail!("unknown measurement {other}"),
        };
        println!(
            "{}",
            serde_json::json!({"samples_per_s": rate, "peak_rss_mib": rss})
        );
        return Ok(());
    }
    if let Some(n) = cli.listing {
        std::fs::create_dir_all(&cli.data)?;
        return measure_listing(&cli.data, n);
    }
    if !cli.data.is_dir() {
        bail!("--data {} is not a directory", cli.data.display());
    }
    if cli.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    // SoCo's reference reads SoCo's JSON, exported from the same store once for every round.
    let soco_json = if cli.method == "soco" {
        let store = cli
            .proposals
            .as_ref()
            .context("--method soco needs --proposals")?;
        let json =
            std::env::temp_dir().join(format!("profile-throughput-{}.json", std::process::id()));
        tools::soco_json::export(store, &json)?;
        Some(json)
    } else {
        None
    };
    // Per round: decode-only, Python, then ours for each worker count.
    let mut decode = Vec::new();
    let mut py = Vec::new();
    let mut rust: Vec<Vec<(f64, f64)>> = vec![Vec::new(); cli.workers.len()];
    for _ in 0..cli.rounds {
        decode.push(child(&cli, "decode", 1)?);
        py.push(run_python(&cli, soco_json.as_deref())?);
        for (i, &w) in cli.workers.iter().enumerate() {
            rust[i].push(child(&cli, "rust", w)?);
        }
    }
    if let Some(json) = &soco_json {
        let _ = std::fs::remove_file(json);
    }
    // Median rate, largest peak RSS, and the median of per-round ratios.
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rate = |m: &[(f64, f64)]| median(m.iter().map(|x| x.0).collect());
    let rss = |m: &[(f64, f64)]| m.iter().map(|x| x.1).fold(0.0, f64::max);
    let ratio = |a: &[(f64, f64)], b: &[(f64, f64)]| {
        median(a.iter().zip(b).map(|(x, y)| x.0 / y.0).collect())
    };
    println!(
        "{} samples/s on {} ({} samples, {}×{} views, DCT scaling {}, partial decoding {})",
        match cli.method.as_str() {
            "soco" => "SoCo (V1, V2, V3 + boxes)",
            "cp2" => "CP² composite",
            "segmentation" => "mmseg segmentation crop",
            _ => "MoCo v2 two-view",
        },
        cli.data.display(),
        cli.samples,
        cli.size,
        cli.size,
        if cli.no_dct_scaling { "off" } else { "on" },
        if cli.no_partial_decode { "off" } else { "on" }
    );
    println!(
        "({} interleaved rounds: median rates, medians of the per-round ratios)",
        cli.rounds
    );
    println!("| pipeline | samples/s | peak RSS | ÷ Python (1 proc) | ÷ decode-only |");
    println!("|---|---|---|---|---|");
    println!(
        "| Python {}, 1 process | {:.1} | {:.0} MiB | 1.00 | {:.2} |",
        if cli.method == "segmentation" {
            "OpenCV+numpy (mmseg)"
        } else {
            "Pillow+numpy"
        },
        rate(&py),
        rss(&py),
        ratio(&py, &decode)
    );
    println!(
        "| decode only (libjpeg-turbo), 1 thread | {:.1} | {:.0} MiB | {:.2} | 1.00 |",
        rate(&decode),
        rss(&decode),
        ratio(&decode, &py)
    );
    for (&w, m) in cli.workers.iter().zip(&rust) {
        println!(
            "| ours, {w} worker{} (through the ring) | {:.1} | {:.0} MiB | {:.2} | {:.2} |",
            if w == 1 { "" } else { "s" },
            rate(m),
            rss(m),
            ratio(m, &py),
            ratio(m, &decode)
        );
    }
    Ok(())
}
