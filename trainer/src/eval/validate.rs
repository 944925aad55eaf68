//! The validation pass of a segmentation evaluation: the fine-tuned network (from its checkpoint)
//! on every validation image the loader serves, whole (or by sliding windows), logits upsampled
//! bilinearly to the label's full size, argmax, one confusion matrix → per-class IoU, mIoU, aAcc
//! (mmseg's `IoUMetric`, ignore 255). Runs on the device without autodiff, so BN uses its running
//! statistics and dropout is off. Writes `eval.json` and `predictions.png` (image | ground truth |
//! prediction, VOC palette) into the run's folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Tensor};
use config::{RunConfig, SegPhase, SegmentationConfig};
use proto_shm::schemas::names;
use serde::Serialize;

use crate::backend::host_f32;
use crate::data::RingBatches;
use crate::eval::confusion::Confusion;
use crate::eval::proto_pictures::{ProtoPictureFiles, ProtoPictures};
use crate::method::{Method, ONLINE_BLOB};
use crate::methods::segmentation::{extents, Segmentation};
use crate::nn::seg_heads::{resize, SegNet};
use crate::record::load_module;
use crate::train::TrainArgs;

/// Validation images drawn into `predictions.png`.
pub const SHEET_IMAGES: usize = 6;

#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    pub class: usize,
    pub name: String,
    pub iou: Option<f64>,
    pub accuracy: Option<f64>,
    pub labelled_pixels: u64,
}

/// `eval.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub run: String,
    pub checkpoint: PathBuf,
    pub images: usize,
    pub miou: f64,
    pub aacc: f64,
    pub macc: f64,
    /// mIoU of predicting the most frequent ground-truth class everywhere (the floor any
    /// segmenter must beat).
    pub majority_miou: f64,
    pub classes: Vec<ClassScore>,
    pub images_per_s: f64,
    pub predictions: PathBuf,
    /// With ProtoSeg's prototype head: its similarity sheet and usage chart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prototypes: Option<ProtoPictureFiles>,
}

/// Logits `[1, classes, h, w]` of one normalised image `[1, 3, h, w]`: whole, or mmseg's
/// `slide_inference` (windows of `window` every `stride`, the last flush with the border, logits
/// averaged where windows overlap).
pub fn infer(net: &SegNet, x: Tensor<4>, slide: Option<(usize, usize)>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let Some((window, stride)) = slide.filter(|&(win, _)| h > win || w > win) else {
        return net.predict(x);
    };
    let grids = |len: usize| len.saturating_sub(window).div_ceil(stride) + 1;
    let device = x.device();
    let mut sum: Option<Tensor<4>> = None;
    let mut count = vec![0f32; h * w];
    for gy in 0..grids(h) {
        for gx in 0..grids(w) {
            let (y2, x2) = ((gy * stride + window).min(h), (gx * stride + window).min(w));
            let (y1, x1) = (y2.saturating_sub(window), x2.saturating_sub(window));
            let logits = net.predict(x.clone().slice([0..1, 0..3, y1..y2, x1..x2]));
            let [_, c, _, _] = logits.dims();
            let acc = sum.unwrap_or_else(|| Tensor::zeros([1, c, h, w], &device));
            let region = acc.clone().slice([0..1, 0..c, y1..y2, x1..x2]) + logits;
            sum = Some(acc.slice_assign([0..1, 0..c, y1..y2, x1..x2], region));
            for y in y1..y2 {
                count[y * w + x1..y * w + x2]
                    .iter_mut()
                    .for_each(|v| *v += 1.0);
            }
        }
    }
    let count = Tensor::<1>::from_floats(count.as_slice(), &device).reshape([1, 1, h, w]);
    sum.expect("at least one window") / count
}

/// A normalised `[1, 3, h, w]` image back to packed RGB u8 (for pictures).
fn to_rgb8(x: Tensor<4>) -> Vec<u8> {
    let device = x.device();
    let [_, _, h, w] = x.dims();
    let mean = Tensor::<1>::from_floats(crate::data::MEAN, &device).reshape([1, 3, 1, 1]);
    let std = Tensor::<1>::from_floats(crate::data::STD, &device).reshape([1, 3, 1, 1]);
    let chw = ((x * std + mean) * 255.0)
        .clamp(0.0, 255.0)
        .round()
        .reshape([3, h * w])
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("floats");
    (0..h * w)
        .flat_map(|p| (0..3).map(move |c| (c, p)))
        .map(|(c, p)| chw[c * h * w + p] as u8)
        .collect()
}

/// Argmax of `[1, c, h, w]` logits as u8 class ids, row-major.
fn argmax_u8(logits: Tensor<4>) -> Vec<u8> {
    let [_, _, h, w] = logits.dims();
    logits
        .argmax(1)
        .reshape([h * w])
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("argmax gives integers")
        .into_iter()
        .map(|v| v as u8)
        .collect()
}

/// One row of the prediction sheet.
struct SheetRow {
    w: usize,
    h: usize,
    image: Vec<u8>,
    label: Vec<u8>,
    pred: Vec<u8>,
}

fn write_sheet(rows: &[SheetRow], path: &Path) -> Result<()> {
    const PAD: usize = 4;
    let tile_w = rows.iter().map(|r| r.w).max().unwrap_or(1);
    let width = 3 * tile_w + 4 * PAD;
    let height = rows.iter().map(|r| r.h + PAD).sum::<usize>() + PAD;
    let mut img =
        image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([40, 40, 40]));
    let mut oy = PAD;
    for r in rows {
        for y in 0..r.h {
            for x in 0..r.w {
                let i = y * r.w + x;
                let tiles = [
                    [r.image[i * 3], r.image[i * 3 + 1], r.image[i * 3 + 2]],
                    config::class_colour(r.label[i]),
                    config::class_colour(r.pred[i]),
                ];
                for (t, px) in tiles.into_iter().enumerate() {
                    let ox = PAD + t * (tile_w + PAD);
                    img.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(px));
                }
            }
        }
        oy += r.h + PAD;
    }
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// mIoU of predicting the most frequent labelled class everywhere, from the label areas alone
/// (no pixels re-counted: a Cityscapes val set has 10⁹): that class's IoU is its share of the
/// labelled pixels, every other class present in the ground truth scores 0, and classes absent
/// from it have no IoU (mmseg's IoUMetric, as `Confusion::miou`).
fn majority_miou(conf: &Confusion) -> f64 {
    let areas: Vec<u64> = (0..conf.classes()).map(|k| conf.label_area(k)).collect();
    let present = areas.iter().filter(|&&a| a > 0).count();
    let top = areas.iter().copied().max().unwrap_or(0);
    if present == 0 {
        return f64::NAN;
    }
    top as f64 / areas.iter().sum::<u64>() as f64 / present as f64
}

/// Runs the validation pass of `args`'s config (phase `Validate`).
pub fn run(args: &TrainArgs) -> Result<EvalReport> {
    let run = RunConfig::from_file(&args.config)?;
    let config::MethodConfig::Segmentation(cfg) = &run.method else {
        bail!("validation needs a Segmentation method config");
    };
    let SegPhase::Validate { checkpoint } = &cfg.phase else {
        bail!("the config's segmentation phase is Finetune, not Validate");
    };
    crate::backend::set_threads(run.trainer.backend, run.trainer.threads)?;
    let device: Device = crate::backend::plain_device(run.trainer.backend)?;
    let out = args.out_dir.clone().unwrap_or_else(|| run.output_dir());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let (net, _) = Segmentation::new(&run, &device)?;
    let ck = crate::checkpoint::load(checkpoint)?;
    let net = load_module(net, ck.blob(ONLINE_BLOB)?).with_context(|| {
        format!(
            "{}: not a fine-tuned network of this config's head and backbone",
            checkpoint.display()
        )
    })?;

    let opts = proto_shm::ShmOptions {
        attach_timeout: Duration::from_secs(120),
        ..proto_shm::options_for_run(&run)
    };
    let mut ring = RingBatches::open(
        &args.shm_name,
        Segmentation::schema(&run)?,
        &run,
        &device,
        &opts,
    )?;
    let report = validate(&mut ring, &net, cfg, &run, checkpoint, &out)?;
    Ok(report)
}

fn validate(
    ring: &mut RingBatches,
    net: &SegNet,
    cfg: &SegmentationConfig,
    run: &RunConfig,
    checkpoint: &Path,
    out: &Path,
) -> Result<EvalReport> {
    let mut conf = Confusion::new(cfg.classes);
    let mut sheet = Vec::new();
    let mut images = 0usize;
    let mut proto_pictures = cfg
        .prototypes
        .as_ref()
        .map(|p| ProtoPictures::new(cfg.classes, p.per_class, p.picture_images, p.picture_class));
    let started = Instant::now();
    while let Some(batch) = ring.next_batch()? {
        let x = batch.image(names::VIEW0);
        let [n, _, slot_h, slot_w] = x.dims();
        let labels = batch.bytes(names::SEG_LABEL);
        for (i, &(h, w)) in extents(&batch).iter().enumerate().take(n) {
            let xi = x.clone().slice([i..i + 1, 0..3, 0..h, 0..w]);
            // With the prototype head, one whole-image pass gives the logits (unless windows
            // slide) and the cosines its pictures need.
            let (logits, proto) = match (&mut proto_pictures, cfg.slide) {
                (None, _) => (infer(net, xi.clone(), cfg.slide), None),
                (Some(_), slide) => {
                    let (out, proto) = net.forward_full(xi.clone());
                    let logits = match slide {
                        None => resize(out.decode.clone(), h, w),
                        Some(_) => infer(net, xi.clone(), slide),
                    };
                    let [_, _, fh, fw] = out.decode.dims();
                    (logits, proto.map(|p| (p.similarity, (fh, fw))))
                }
            };
            let pred = argmax_u8(logits);
            let mut gt = Vec::with_capacity(h * w);
            for y in 0..h {
                let row = (i * slot_h + y) * slot_w;
                gt.extend_from_slice(&labels[row..row + w]);
            }
            conf.add(&gt, &pred)?;
            if let (Some(pics), Some((sim, grid))) = (&mut proto_pictures, proto) {
                pics.add(&to_rgb8(xi.clone()), &gt, (h, w), grid, host_f32(sim));
            }
            if sheet.len() < SHEET_IMAGES {
                sheet.push(SheetRow {
                    w,
                    h,
                    image: to_rgb8(xi),
                    label: gt,
                    pred,
                });
            }
            images += 1;
        }
        if images.is_multiple_of(20) {
            tracing::info!(images, miou = format!("{:.4}", conf.miou()), "validate");
        }
    }
    if images == 0 {
        bail!("the loader's stream held no validation image");
    }
    let seconds = started.elapsed().as_secs_f64();
    let predictions = out.join("predictions.png");
    write_sheet(&sheet, &predictions)?;
    let prototypes = match &proto_pictures {
        Some(p) => Some(p.write(out, &cfg.class_names)?),
        None => None,
    };
    let (iou, acc) = (conf.iou(), conf.accuracy());
    let report = EvalReport {
        run: run.name.clone(),
        checkpoint: checkpoint.to_path_buf(),
        images,
        miou: conf.miou(),
        aacc: conf.aacc(),
        macc: conf.macc(),
        majority_miou: majority_miou(&conf),
        classes: (0..cfg.classes)
            .map(|k| ClassScore {
                class: k,
                name: cfg
                    .class_names
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| k.to_string()),
                iou: iou[k],
                accuracy: acc[k],
                labelled_pixels: conf.label_area(k),
            })
            .collect(),
        images_per_s: images as f64 / seconds.max(1e-9),
        predictions,
        prototypes,
    };
    let path = out.join("eval.json");
    let tmp = out.join("eval.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&report)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(report)
}

/// The per-class table and the scores, for people.
pub fn print_report(r: &EvalReport, out: &Path) {
    println!(
        "validation: {} images, {:.1} images/s",
        r.images, r.images_per_s
    );
    println!("  {:<16} {:>7} {:>7}", "class", "IoU", "Acc");
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}", v * 100.0));
    for c in &r.classes {
        println!("  {:<16} {:>7} {:>7}", c.name, pct(c.iou), pct(c.accuracy));
    }
    println!(
        "mIoU {:.2}  mAcc {:.2}  aAcc {:.2}  (majority-class predictor: mIoU {:.2})",
        r.miou * 100.0,
        r.macc * 100.0,
        r.aacc * 100.0,
        r.majority_miou * 100.0
    );
    println!("  report:      {}", out.join("eval.json").display());
    println!("  predictions: {}", r.predictions.display());
    if let Some(p) = &r.prototypes {
        println!(
            "  prototypes: {} (class {}), {}",
            p.similarity.display(),
            p.class,
            p.usage.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form against actually predicting the top class for every labelled pixel.
    #[test]
    fn majority_miou_equals_predicting_the_top_class_everywhere() {
        let gt: Vec<u8> = [0u8, 0, 0, 0, 0, 2, 2, 3, 255, 255].repeat(7);
        let mut conf = Confusion::new(5);
        conf.add(&gt, &gt).unwrap();
        let mut all_top = Confusion::new(5);
        let pred: Vec<u8> = gt.iter().map(|&g| if g == 255 { 255 } else { 0 }).collect();
        all_top.add(&gt, &pred).unwrap();
        assert_eq!(majority_miou(&conf), all_top.miou());
        assert!((majority_miou(&conf) - (5.0 / 8.0) / 3.0).abs() < 1e-12);
    }
}
