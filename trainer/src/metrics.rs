//! Per-step metrics as JSON lines, and the loss curve as a PNG (plotters).

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: u64,
    pub batch: u64,
    pub loss: f64,
    #[serde(flatten)]
    pub terms: std::collections::BTreeMap<&'static str, f64>,
    pub lr: f64,
    pub momentum: f64,
    pub data_wait_ms: f64,
    pub step_ms: f64,
}

pub struct MetricsLog {
    file: std::io::BufWriter<std::fs::File>,
    pub losses: Vec<(usize, f64)>,
}

impl MetricsLog {
    /// Appends to `path` (a resumed run continues the same file).
    pub fn open(path: &Path) -> Result<MetricsLog> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(MetricsLog {
            file: std::io::BufWriter::new(f),
            losses: Vec::new(),
        })
    }

    pub fn write(&mut self, r: &StepRecord) -> Result<()> {
        serde_json::to_writer(&mut self.file, r)?;
        self.file.write_all(b"\n")?;
        self.file.flush()?;
        self.losses.push((r.step, r.loss));
        Ok(())
    }
}

/// A system TTF font for the plot's text, if one is installed (Debian: fonts-dejavu-core).
pub(crate) fn register_font() -> bool {
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ] {
        if let Ok(bytes) = std::fs::read(p) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// A centred moving average over `window` points (shorter at the ends).
pub fn smoothed(pts: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let half = window / 2;
    (0..pts.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(pts.len()));
            let mean = pts[a..b].iter().map(|p| p.1).sum::<f64>() / (b - a) as f64;
            (pts[i].0, mean)
        })
        .collect()
}

/// (step, loss) of every line of a metrics JSONL file.
fn loss_points(jsonl: &Path) -> Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string(jsonl)?;
    let pts: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_f64()?, v["loss"].as_f64()?)))
        .collect();
    if pts.is_empty() {
        anyhow::bail!("no steps in {}", jsonl.display());
    }
    Ok(pts)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// An 800×480 chart over `x` × `y` with its title and axis names (when a font is available).
fn chart<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    title: &str,
    axes: (&str, &str),
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    with_text: bool,
) -> Result<Chart<'a, 'b>> {
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if with_text {
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(x, y)?;
    if with_text {
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .draw()?;
    }
    Ok(chart)
}

/// The legend box, when a font is available.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    with_text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if with_text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// Reads a metrics JSONL file and draws loss against step into `png`: every step (light), a
/// moving average over ~5 % of the run (dark) and, when the method has one, the loss of a
/// network that has learnt nothing (`chance`, dashed red) — so a MoCo loss that rises while its
/// queue fills with real keys reads as what it is.
pub fn plot_losses(jsonl: &Path, png: &Path, title: &str, chance: Option<f64>) -> Result<()> {
    let pts = loss_points(jsonl)?;
    let with_text = register_font();
    let x1 = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let ys = pts.iter().map(|p| p.1).chain(chance);
    let ymax = ys.clone().fold(f64::NEG_INFINITY, f64::max);
    let ymin = ys.fold(f64::INFINITY, f64::min);
    // 5 % of the span above and below: losses may be negative (BYOL-style) or constant.
    let pad = ((ymax - ymin) * 0.05).max(1e-3);
    let root = BitMapBackend::new(png, (800, 480)).into_drawing_area();
    let mut chart = chart(
        &root,
        title,
        ("step", "loss"),
        0f64..x1,
        (ymin - pad)..(ymax + pad),
        with_text,
    )?;
    let smooth = smoothed(&pts, (pts.len() / 20).max(1) | 1);
    let raw = chart.draw_series(LineSeries::new(pts, BLUE.mix(0.3)))?;
    if with_text {
        raw.label("loss per step")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.mix(0.3)));
    }
    let avg = chart.draw_series(LineSeries::new(smooth, BLUE.stroke_width(2)))?;
    if with_text {
        avg.label("moving average")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    }
    if let Some(c) = chance {
        // Dashed: short segments along the line.
        let step = (x1 / 60.0).max(1e-9);
        let dashes = (0..60).filter(|i| i % 2 == 0).map(|i| {
            let x = i as f64 * step;
            PathElement::new(vec![(x, c), ((x + step).min(x1), c)], RED.stroke_width(2))
        });
        let line = chart.draw_series(dashes)?;
        if with_text {
            line.label(format!("chance ({c:.3})"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        }
    }
    legend(&mut chart, with_text)?;
    root.present()?;
    Ok(())
}

/// Fine-tuning curves of several inits on one chart: each one's loss smoothed over ~5 % of the
/// run, its final validation mIoU in the legend.
pub fn plot_finetune(
    curves: &[(String, std::path::PathBuf, f64)],
    png: &Path,
    title: &str,
) -> Result<()> {
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN];
    let mut series = Vec::new();
    for (label, jsonl, miou) in curves {
        let pts = loss_points(jsonl)?;
        let smooth = smoothed(&pts, (pts.len() / 20).max(1) | 1);
        series.push((format!("{label}: val mIoU {:.2}", miou * 100.0), smooth));
    }
    let with_text = register_font();
    let all = series.iter().flat_map(|s| s.1.iter());
    let x1 = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let ymax = all.clone().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let ymin = all.map(|p| p.1).fold(f64::INFINITY, f64::min).min(0.0);
    let root = BitMapBackend::new(png, (800, 480)).into_drawing_area();
    let mut chart = chart(
        &root,
        title,
        ("iteration", "loss (moving average)"),
        0f64..x1,
        ymin..(ymax * 1.05).max(1e-3),
        with_text,
    )?;
    for ((label, pts), colour) in series.into_iter().zip(colours.iter().cycle()) {
        let c = *colour;
        let s = chart.draw_series(LineSeries::new(pts, c.stroke_width(2)))?;
        if with_text {
            s.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
            });
        }
    }
    legend(&mut chart, with_text)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_plots_are_written_as_800_by_480_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("metrics.jsonl");
        let lines: String = (0..50)
            .map(|i| format!("{{\"step\":{i},\"loss\":{}}}\n", 3.0 - i as f64 * 0.03))
            .collect();
        std::fs::write(&jsonl, lines).unwrap();
        let a = dir.path().join("loss.png");
        super::plot_losses(&jsonl, &a, "t", Some(3.1)).unwrap();
        let b = dir.path().join("finetune.png");
        let curves = [
            ("a".to_string(), jsonl.clone(), 0.5),
            ("b".to_string(), jsonl.clone(), 0.4),
        ];
        super::plot_finetune(&curves, &b, "t").unwrap();
        for p in [a, b] {
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{}", p.display());
            // IHDR: width and height, big-endian, at bytes 16..24.
            let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
            let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
            assert_eq!((w, h), (800, 480));
        }
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        assert!(super::plot_losses(&empty, &dir.path().join("x.png"), "t", None).is_err());
    }

    #[test]
    fn moving_average_is_centred_and_shorter_at_the_ends() {
        let pts = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 10.0)];
        assert_eq!(
            super::smoothed(&pts, 3),
            vec![(0.0, 2.0), (1.0, 3.0), (2.0, 6.0), (3.0, 7.5)]
        );
    }
}
