//! `precompute-proposals`: selective-search proposals for every image of a dataset, SoCo's
//! parameters and filter, into a proposal store (see `loader::proposals`). Parallel across images,
//! resumable (a killed run continues at the first unfinished block and ends with the same file),
//! bad images skipped, counted and named. Also converts to and from SoCo's JSON
//! (`{basename: [[x, y, w, h], ...]}`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::{DatasetConfig, DatasetLayout, RunConfig};
use loader::decode::Decoder;
use loader::image::RgbImage;
use loader::proposals::{ImageProposals, StoreWriter, BLOCK_IMAGES};
use loader::source::Dataset;
use selective_search::filter::{soco_filter, Rule};
use selective_search::{selective_search, Params};

#[derive(Parser)]
#[command(about = "Selective-search proposals for a dataset, into a compact proposal store")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compute proposals (resumes an interrupted store).
    Run {
        /// A run config whose dataset to use…
        #[arg(long, conflicts_with = "data")]
        config: Option<PathBuf>,
        /// …or a folder of images (flat layout).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))]
        workers: usize,
        /// Keep every box of the hierarchy instead of SoCo's filtered set.
        #[arg(long)]
        unfiltered: bool,
        /// Only the first N images.
        #[arg(long)]
        limit: Option<usize>,
        /// Images per store block (each block is appended and synced whole).
        #[arg(long, default_value_t = BLOCK_IMAGES)]
        block_images: usize,
    },
    /// Write SoCo's JSON from a store.
    Export {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        json: PathBuf,
    },
    /// Make a store from SoCo's JSON (keys are basenames; sizes unknown, recorded as 0).
    Import {
        #[arg(long)]
        json: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn rule_code(r: Rule) -> u8 {
    match r {
        Rule::Full => 0,
        Rule::RatioOnly => 1,
        Rule::MinSize => 2,
        Rule::WholeImage => 3,
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    config: Option<PathBuf>,
    data: Option<PathBuf>,
    out: PathBuf,
    workers: usize,
    unfiltered: bool,
    limit: Option<usize>,
    block: usize,
) -> Result<()> {
    let ds_cfg = match (config, data) {
        (Some(c), _) => RunConfig::from_file(&c)?.dataset,
        (None, Some(d)) => DatasetConfig {
            root: d,
            layout: DatasetLayout::Flat,
            proposals: None,
            max_images: None,
        },
        (None, None) => anyhow::bail!("give --config or --data"),
    };
    let ds = Dataset::open(&ds_cfg)?;
    let total = limit.map_or(ds.len(), |l| l.min(ds.len()));
    let mut writer = StoreWriter::open(&out)?;
    let start_block = writer.blocks_done();
    if start_block > 0 {
        println!(
            "resuming: {} images already in {}",
            (start_block * block).min(total),
            out.display()
        );
    }
    let block = block.max(1);
    let blocks = total.div_ceil(block);
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} images {per_sec} eta {eta}",
            )
            .unwrap(),
        );
        b.set_position((start_block * block).min(total) as u64);
        b
    });
    let t0 = Instant::now();
    let skipped: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let mut rules = [0u64; 4];
    let mut box_counts: Vec<usize> = Vec::new();
    let mut ms: Vec<f64> = Vec::new();
    for b in start_block..blocks {
        let range = b * block..((b + 1) * block).min(total);
        let results: Vec<Mutex<Option<(ImageProposals, f64)>>> =
            range.clone().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..workers.max(1) {
                s.spawn(|| {
                    let mut dec = Decoder::new(89_478_485);
                    let mut img = RgbImage::default();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= range.len() {
                            break;
                        }
                        let index = range.start + k;
                        let key = ds.entries[index].path.to_string_lossy().into_owned();
                        let t = Instant::now();
                        let res = std::fs::read(ds.path_of(index))
                            .map_err(|e| e.to_string())
                            .and_then(|bytes| dec.decode_full(&bytes, &mut img).map(|_| ()).map_err(|e| e.to_string()));
                        let p = match res {
                            Ok(()) => {
                                let rects = selective_search(&img.data, img.width, img.height, &Params::default());
                                let (kept, rule) = if unfiltered {
                                    (rects, Rule::Full)
                                } else {
                                    soco_filter(&rects, img.width as u32, img.height as u32)
                                };
                                ImageProposals {
                                    key,
                                    width: img.width as u32,
                                    height: img.height as u32,
                                    rule: rule_code(rule),
                                    boxes: kept.iter().map(|r| [r.x, r.y, r.w, r.h]).collect(),
                                }
                            }
                            Err(why) => {
                                tracing::warn!(file = %ds.path_of(index).display(), reason = %why, "skipping image");
                                *skipped.lock().unwrap().entry(why.split(':').next().unwrap_or("").to_string()).or_default() += 1;
                                ImageProposals { key, width: 0, height: 0, rule: 255, boxes: Vec::new() }
                            }
                        };
                        *results[k].lock().unwrap() = Some((p, t.elapsed().as_secs_f64() * 1e3));
                        if let Some(bar) = &bar {
                            bar.inc(1);
                        }
                    }
                });
            }
        });
        let items: Vec<ImageProposals> = results
            .into_iter()
            .map(|m| {
                let (p, t) = m.into_inner().unwrap().expect("every image processed");
                if p.rule != 255 {
                    rules[p.rule as usize] += 1;
                    box_counts.push(p.boxes.len());
                    ms.push(t);
                }
                p
            })
            .collect();
        writer.append_block(&items)?;
    }
    writer.finish()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    box_counts.sort_unstable();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = box_counts.len();
    println!(
        "precompute-proposals: {} images in {:.1} s ({} computed this run, {workers} workers)",
        total, secs, n
    );
    if n > 0 {
        let mean = box_counts.iter().sum::<usize>() as f64 / n as f64;
        println!(
            "  boxes per image: min {} / median {} / mean {:.1} / max {}; median {:.1} ms per image per worker",
            box_counts[0], box_counts[n / 2], mean, box_counts[n - 1], ms[n / 2]
        );
        println!(
            "  filter rule: full {}, ratio-only fallback {}, min-size fallback {}, whole image (empty after filter) {}",
            rules[0], rules[1], rules[2], rules[3]
        );
    }
    let sk = skipped.into_inner().unwrap();
    let nsk: u64 = sk.values().sum();
    println!(
        "  skipped images: {nsk}{}",
        if nsk > 0 {
            format!(" {sk:?}")
        } else {
            String::new()
        }
    );
    let size = std::fs::metadata(&out)?.len();
    println!(
        "  store {}: {} bytes ({:.1} bytes per image)",
        out.display(),
        size,
        size as f64 / total.max(1) as f64
    );
    Ok(())
}

fn export(store: PathBuf, json: PathBuf) -> Result<()> {
    let n = tools::soco_json::export(&store, &json)?;
    println!("exported {n} images to {}", json.display());
    Ok(())
}

fn import(json: PathBuf, out: PathBuf) -> Result<()> {
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json)?)?;
    let mut items = Vec::new();
    for (k, boxes) in v {
        let boxes: Vec<[u32; 4]> =
            serde_json::from_value(boxes).with_context(|| format!("{k}: boxes"))?;
        items.push(ImageProposals {
            key: k,
            width: 0,
            height: 0,
            rule: 0,
            boxes,
        });
    }
    items.sort_by(|a, b| a.key.cmp(&b.key));
    let _ = std::fs::remove_file(&out);
    let mut w = StoreWriter::open(&out)?;
    for chunk in items.chunks(BLOCK_IMAGES) {
        w.append_block(chunk)?;
    }
    w.finish()?;
    println!("imported {} images into {}", items.len(), out.display());
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match Cli::parse().cmd {
        Cmd::Run {
            config,
            data,
            out,
            workers,
            unfiltered,
            limit,
            block_images,
        } => run(config, data, out, workers, unfiltered, limit, block_images),
        Cmd::Export { store, json } => export(store, json),
        Cmd::Import { json, out } => import(json, out),
    }
}
