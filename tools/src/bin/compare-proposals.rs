//! `compare-proposals`: our selective search against reference proposals on the same images.
//! The reference JSON maps image paths (relative to --data) to any of:
//! * `"rects"` + `"ms"` (tests/reference/selective_search_reference.py, the Python package SoCo
//!   uses): the fraction of its boxes one of ours matches at IoU ≥ 0.7 and vice versa;
//! * `"opencv"` + `"opencv_ms"` (tests/reference/opencv_proposals.py, OpenCV's fast mode): the
//!   same two fractions against OpenCV's boxes;
//! * `"gt"` (CamVid thing-class boxes, `--camvid`): recall at IoU ≥ 0.5 of ours and of OpenCV at
//!   an equal number of proposals (OpenCV's first N, N = ours per image), and of all of OpenCV's.
//!
//! ms/image for ours is measured here, single-threaded; the references' as they recorded them.

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
    /// Diversify over these Felzenszwalb scales (default: SoCo's single scale 300).
    #[arg(long, value_delimiter = ',')]
    ks: Vec<f64>,
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
    let (mut cv_hit, mut cv_all, mut our_cv_hit, mut our_cv_all) = (0, 0, 0, 0);
    let (mut gt_ours, mut gt_cv_n, mut gt_cv_all, mut gt_all, mut n_ours, mut n_cv) =
        (0, 0, 0, 0, 0, 0);
    let (mut ours_ms, mut ref_ms, mut cv_ms) = (Vec::new(), Vec::new(), Vec::new());
    let rects = |v: &serde_json::Value| -> Vec<Rect> {
        v.as_array()
            .map(|a| {
                a.iter()
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
                    .collect()
            })
            .unwrap_or_default()
    };
    for (name, v) in refs.as_object().context("reference is an object")? {
        let bytes = std::fs::read(cli.data.join(name))?;
        dec.decode_full(&bytes, &mut img)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let t = Instant::now();
        let ours = if cli.ks.is_empty() {
            selective_search(&img.data, img.width, img.height, &Params::default())
        } else {
            selective_search::selective_search_diverse(
                &img.data,
                img.width,
                img.height,
                &Params::default(),
                &cli.ks,
            )
        };
        ours_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if v.get("rects").is_some() {
            ref_ms.push(v["ms"].as_f64().unwrap_or(0.0));
            let theirs = rects(&v["rects"]);
            let (a, b) = covered(&theirs, &ours, cli.iou);
            let (c, d) = covered(&ours, &theirs, cli.iou);
            println!("{name}: reference {} regions, ours {}; reference matched {a}/{b}, ours matched {c}/{d}", theirs.len(), ours.len());
            ref_hit += a;
            ref_all += b;
            our_hit += c;
            our_all += d;
        }
        if v.get("opencv").is_some() {
            cv_ms.push(v["opencv_ms"].as_f64().unwrap_or(0.0));
            let cv = rects(&v["opencv"]);
            // OpenCV returns distinct boxes; the hierarchy repeats a box whenever a merge does not
            // grow it. Counting proposals means counting distinct boxes on both sides.
            let mut seen = std::collections::HashSet::new();
            let ours: Vec<_> = ours.iter().copied().filter(|r| seen.insert(*r)).collect();
            if v.get("gt").is_some() {
                let gt = rects(&v["gt"]);
                let n = ours.len().min(cv.len());
                gt_ours += covered(&gt, &ours, 0.5).0;
                gt_cv_n += covered(&gt, &cv[..n], 0.5).0;
                gt_cv_all += covered(&gt, &cv, 0.5).0;
                gt_all += gt.len();
                n_ours += ours.len();
                n_cv += cv.len();
            } else {
                let (a, b) = covered(&cv, &ours, cli.iou);
                let (c, d) = covered(&ours, &cv, cli.iou);
                cv_hit += a;
                cv_all += b;
                our_cv_hit += c;
                our_cv_all += d;
            }
        }
    }
    let frac = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    if ref_all > 0 {
        println!(
            "{} images vs the Python package: its boxes matched by ours at IoU ≥ {}: {:.3}; ours matched by it: {:.3}",
            ref_ms.len(), cli.iou, frac(ref_hit, ref_all), frac(our_hit, our_all)
        );
    }
    if cv_all > 0 {
        println!(
            "vs OpenCV fast: its boxes matched by ours at IoU ≥ {}: {:.3} ({cv_all} boxes); ours matched by it: {:.3}",
            cli.iou, frac(cv_hit, cv_all), frac(our_cv_hit, our_cv_all)
        );
    }
    if gt_all > 0 {
        println!(
            "recall of {gt_all} thing-class boxes at IoU ≥ 0.5: ours {:.3} ({:.0} proposals/image); OpenCV fast at the same count {:.3}; OpenCV fast, all {:.0} proposals/image: {:.3}",
            frac(gt_ours, gt_all),
            n_ours as f64 / ours_ms.len() as f64,
            frac(gt_cv_n, gt_all),
            n_cv as f64 / ours_ms.len() as f64,
            frac(gt_cv_all, gt_all)
        );
    }
    let o = median(ours_ms);
    if !ref_ms.is_empty() {
        let r = median(ref_ms);
        println!(
            "median ms/image: ours {o:.1}, Python package {r:.1} ({:.1}× faster)",
            r / o
        );
    }
    if !cv_ms.is_empty() {
        let c = median(cv_ms);
        println!(
            "median ms/image: ours {o:.1}, OpenCV fast {c:.1} ({:.1}× faster)",
            c / o
        );
    }
    Ok(())
}
