//! `compare-proposals`: our selective search against reference proposals (JSON from
//! tests/reference/selective_search_reference.py) on the same images: the fraction of reference
//! boxes that one of ours matches at IoU ≥ 0.7 and vice versa, region counts, and ms/image for both
//! (ours single-threaded, measured here; the reference's as it recorded).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use selective_search::{selective_search, Params, Rect};

#[derive(Parser)]
struct Cli {
    /// Reference JSON {file: {"rects": [[x, y, w, h]...], "ms": t}}.
    #[arg(long)]
    reference: PathBuf,
    /// Folder holding the images named in the reference.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 0.7)]
    iou: f64,
}

fn iou(a: &Rect, b: &Rect) -> f64 {
    let (ax1, ay1, ax2, ay2) = (
        a.x as f64,
        a.y as f64,
        (a.x + a.w) as f64,
        (a.y + a.h) as f64,
    );
    let (bx1, by1, bx2, by2) = (
        b.x as f64,
        b.y as f64,
        (b.x + b.w) as f64,
        (b.y + b.h) as f64,
    );
    let iw = (ax2.min(bx2) - ax1.max(bx1)).max(0.0);
    let ih = (ay2.min(by2) - ay1.max(by1)).max(0.0);
    let inter = iw * ih;
    let union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter;
    if union <= 0.0 {
        (a == b) as u8 as f64
    } else {
        inter / union
    }
}

fn covered(of: &[Rect], by: &[Rect], t: f64) -> (usize, usize) {
    let n = of
        .iter()
        .filter(|a| by.iter().any(|b| iou(a, b) >= t))
        .count();
    (n, of.len())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let refs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cli.reference)?)?;
    let mut dec = loader::decode::Decoder::new(1 << 28);
    let mut img = loader::image::RgbImage::default();
    let (mut ref_hit, mut ref_all, mut our_hit, mut our_all) = (0, 0, 0, 0);
    let (mut ours_ms, mut ref_ms) = (Vec::new(), Vec::new());
    for (name, v) in refs.as_object().context("reference is an object")? {
        let bytes = std::fs::read(cli.data.join(name))?;
        let info = dec
            .probe(&bytes)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        dec.decode(&bytes, &info, (1, 1), &mut img)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let t = Instant::now();
        let ours = selective_search(&img.data, img.width, img.height, &Params::default());
        ours_ms.push(t.elapsed().as_secs_f64() * 1e3);
        ref_ms.push(v["ms"].as_f64().unwrap_or(0.0));
        let theirs: Vec<Rect> = v["rects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let r: Vec<u32> = r
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect();
                Rect {
                    x: r[0],
                    y: r[1],
                    w: r[2],
                    h: r[3],
                }
            })
            .collect();
        let (a, b) = covered(&theirs, &ours, cli.iou);
        let (c, d) = covered(&ours, &theirs, cli.iou);
        println!("{name}: reference {} regions, ours {}; reference matched {a}/{b}, ours matched {c}/{d}", theirs.len(), ours.len());
        ref_hit += a;
        ref_all += b;
        our_hit += c;
        our_all += d;
    }
    println!(
        "{} images: reference boxes matched by ours at IoU ≥ {}: {:.3}; ours matched by the reference: {:.3}",
        ours_ms.len(),
        cli.iou,
        ref_hit as f64 / ref_all.max(1) as f64,
        our_hit as f64 / our_all.max(1) as f64
    );
    let (o, r) = (median(ours_ms), median(ref_ms));
    println!(
        "median ms/image: ours {o:.1}, reference {r:.1} ({:.1}× faster)",
        r / o
    );
    Ok(())
}
