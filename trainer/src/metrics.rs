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
fn register_font() -> bool {
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

/// Reads a metrics JSONL file and draws loss against step into `png`.
pub fn plot_losses(jsonl: &Path, png: &Path, title: &str) -> Result<()> {
    let text = std::fs::read_to_string(jsonl)?;
    let pts: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_f64()?, v["loss"].as_f64()?)))
        .collect();
    if pts.is_empty() {
        anyhow::bail!("no steps in {}", jsonl.display());
    }
    let with_text = register_font();
    let x1 = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let ymax = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let ymin = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    // 5 % of the span above and below: losses may be negative (BYOL-style) or constant.
    let pad = ((ymax - ymin) * 0.05).max(1e-3);
    let root = BitMapBackend::new(png, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if with_text {
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(0f64..x1, (ymin - pad)..(ymax + pad))?;
    if with_text {
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .draw()?;
    }
    chart.draw_series(LineSeries::new(pts, &BLUE))?;
    root.present()?;
    Ok(())
}
