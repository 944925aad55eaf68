//! What ProtoSeg's prototypes learnt, drawn by a validation pass with the prototype head:
//! - `prototype_similarity.png` (the paper's Fig. 3): per validation image, the image, where the
//!   chosen class lies in its ground truth (white), then one map per prototype of that class — the
//!   cosine of each feature cell's embedding to the prototype, dark (the row's lowest) to bright
//!   yellow (its highest). Prototypes that learnt different parts of a class light up different
//!   regions; collapsed ones draw the same map.
//! - `prototype_usage.png`: per class, the share of its labelled validation pixels whose nearest
//!   prototype of that class is each of its M prototypes. One bar at 100 % is intra-class
//!   collapse (the reference's reported failure, tfzhou/ProtoSeg#15); even bars mean every
//!   prototype is used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use plotters::prelude::*;

use crate::loss::protoseg::{argmax, nearest_labels};

/// One validation image kept for the similarity sheet.
struct SimilarityRow {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
    label: Vec<u8>,
    fh: usize,
    fw: usize,
    /// `[fh·fw, K·M]` cosines.
    similarity: Vec<f32>,
}

/// Accumulates prototype usage over the validation set and keeps the first images' similarities.
pub struct ProtoPictures {
    classes: usize,
    per_class: usize,
    images: usize,
    class: Option<usize>,
    usage: Vec<u64>,
    labelled: Vec<u64>,
    rows: Vec<SimilarityRow>,
}

/// The files written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProtoPictureFiles {
    pub similarity: PathBuf,
    pub usage: PathBuf,
    /// The class the similarity maps show.
    pub class: usize,
    /// Per class, the share of its pixels nearest each prototype (`[K][M]`).
    pub usage_shares: Vec<Vec<f64>>,
}

impl ProtoPictures {
    pub fn new(classes: usize, per_class: usize, images: usize, class: Option<usize>) -> Self {
        ProtoPictures {
            classes,
            per_class,
            images,
            class,
            usage: vec![0; classes * per_class],
            labelled: vec![0; classes],
            rows: Vec::new(),
        }
    }

    /// One validation image: `rgb` and `label` at `(h, w)`, the head's cosines `[fh·fw, K·M]`.
    pub fn add(
        &mut self,
        rgb: &[u8],
        label: &[u8],
        (h, w): (usize, usize),
        (fh, fw): (usize, usize),
        similarity: Vec<f32>,
    ) {
        let (k_n, m_n) = (self.classes, self.per_class);
        let grid = nearest_labels(label, 1, (h, w), (fh, fw));
        for (cell, &k) in grid.iter().enumerate() {
            if k < 0 || k as usize >= k_n {
                continue;
            }
            let k = k as usize;
            let at = cell * k_n * m_n + k * m_n;
            self.usage[k * m_n + argmax(&similarity[at..at + m_n])] += 1;
            self.labelled[k] += 1;
        }
        if self.rows.len() < self.images {
            self.rows.push(SimilarityRow {
                w,
                h,
                rgb: rgb.to_vec(),
                label: label.to_vec(),
                fh,
                fw,
                similarity,
            });
        }
    }

    /// Writes both pictures into `out`.
    pub fn write(&self, out: &Path, class_names: &[String]) -> Result<ProtoPictureFiles> {
        let class = self.class.unwrap_or_else(|| {
            (0..self.classes)
                .max_by_key(|&k| self.labelled[k])
                .unwrap_or(0)
        });
        let similarity = out.join("prototype_similarity.png");
        self.similarity_sheet(class, &similarity)?;
        let usage = out.join("prototype_usage.png");
        let shares = self.shares();
        usage_chart(&shares, class_names, &usage)?;
        Ok(ProtoPictureFiles {
            similarity,
            usage,
            class,
            usage_shares: shares,
        })
    }

    fn shares(&self) -> Vec<Vec<f64>> {
        (0..self.classes)
            .map(|k| {
                let n = self.labelled[k].max(1) as f64;
                (0..self.per_class)
                    .map(|m| self.usage[k * self.per_class + m] as f64 / n)
                    .collect()
            })
            .collect()
    }

    fn similarity_sheet(&self, class: usize, path: &Path) -> Result<()> {
        const PAD: usize = 4;
        const TILE_H: usize = 96;
        let m_n = self.per_class;
        let km = self.classes * m_n;
        let tile_w = self
            .rows
            .iter()
            .map(|r| r.w * TILE_H / r.h.max(1))
            .max()
            .unwrap_or(1)
            .max(1);
        let cols = 2 + m_n;
        let width = cols * tile_w + (cols + 1) * PAD;
        let height = self.rows.len() * (TILE_H + PAD) + PAD;
        let mut img = RgbImage::from_pixel(width as u32, height.max(1) as u32, Rgb([40, 40, 40]));
        for (r, row) in self.rows.iter().enumerate() {
            let oy = PAD + r * (TILE_H + PAD);
            let tw = (row.w * TILE_H / row.h.max(1)).max(1);
            let (lo, hi) = (0..m_n)
                .flat_map(|m| {
                    (0..row.fh * row.fw).map(move |c| row.similarity[c * km + class * m_n + m])
                })
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
            let span = (hi - lo).max(1e-6);
            for y in 0..TILE_H {
                let sy = (y * row.h / TILE_H).min(row.h - 1);
                let fy = (sy * row.fh / row.h).min(row.fh - 1);
                for x in 0..tw {
                    let sx = (x * row.w / tw).min(row.w - 1);
                    let fx = (sx * row.fw / row.w).min(row.fw - 1);
                    let p = sy * row.w + sx;
                    let mut tiles = vec![
                        [row.rgb[p * 3], row.rgb[p * 3 + 1], row.rgb[p * 3 + 2]],
                        if row.label[p] as usize == class {
                            [255, 255, 255]
                        } else {
                            [0, 0, 0]
                        },
                    ];
                    let cell = fy * row.fw + fx;
                    for m in 0..m_n {
                        let v = row.similarity[cell * km + class * m_n + m];
                        tiles.push(heat((v - lo) / span));
                    }
                    for (t, px) in tiles.into_iter().enumerate() {
                        let ox = PAD + t * (tile_w + PAD);
                        img.put_pixel((ox + x) as u32, (oy + y) as u32, Rgb(px));
                    }
                }
            }
        }
        let tmp = path.with_extension("png.tmp");
        img.save_with_format(&tmp, image::ImageFormat::Png)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// A dark-to-bright colour scale (black → purple → orange → yellow) for `t` in [0, 1].
pub fn heat(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 4.0],
        [80.0, 18.0, 123.0],
        [182.0, 54.0, 121.0],
        [251.0, 136.0, 97.0],
        [252.0, 253.0, 191.0],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let mut c = [0u8; 3];
    for (ch, v) in c.iter_mut().enumerate() {
        *v = (STOPS[i][ch] * (1.0 - f) + STOPS[i + 1][ch] * f).round() as u8;
    }
    c
}

/// One small bar chart per class: the share of its pixels nearest each of its prototypes.
fn usage_chart(shares: &[Vec<f64>], names: &[String], path: &Path) -> Result<()> {
    let with_text = crate::metrics::register_font();
    let k = shares.len().max(1);
    let cols = k.min(4);
    let rows = k.div_ceil(cols);
    // plotters picks the encoder by the extension: the temporary name must end in .png.
    let tmp = path.with_extension("tmp.png");
    {
        let root =
            BitMapBackend::new(&tmp, (cols as u32 * 240, rows as u32 * 170)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((rows, cols));
        for (c, (share, panel)) in shares.iter().zip(panels.iter()).enumerate() {
            let m = share.len();
            let name = names.get(c).cloned().unwrap_or_else(|| c.to_string());
            let mut b = ChartBuilder::on(panel);
            b.margin(6);
            if with_text {
                b.caption(&name, ("sans-serif", 14))
                    .x_label_area_size(18)
                    .y_label_area_size(30);
            }
            let mut chart = b.build_cartesian_2d(0f64..m as f64, 0f64..1.0)?;
            if with_text {
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .y_labels(3)
                    .x_labels(m.min(10))
                    .x_label_formatter(&|x| format!("{}", *x as usize))
                    .label_style(("sans-serif", 10))
                    .draw()?;
            }
            chart.draw_series(share.iter().enumerate().map(|(i, &v)| {
                let x = i as f64;
                Rectangle::new([(x + 0.1, 0.0), (x + 0.9, v)], BLUE.filled())
            }))?;
        }
        root.present()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_each_labelled_cell_at_its_nearest_prototype_of_its_class() {
        // 2 classes × 2 prototypes, a 2×2 image on a 2×2 grid: cells labelled 0, 0, 1, 255.
        let mut p = ProtoPictures::new(2, 2, 1, None);
        let sim = vec![
            0.9, 0.1, 0.0, 0.0, // class 0 → prototype 0
            0.2, 0.3, 0.9, 0.9, // class 0 → prototype 1 (class 1's cosines do not count)
            0.0, 0.0, 0.1, 0.5, // class 1 → prototype 1
            0.9, 0.9, 0.9, 0.9, // ignore: not counted
        ];
        p.add(&[0; 12], &[0, 0, 1, 255], (2, 2), (2, 2), sim);
        assert_eq!(p.shares(), vec![vec![0.5, 0.5], vec![0.0, 1.0]]);
        let dir = std::env::temp_dir().join(format!("proto-pictures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = p.write(&dir, &[]).unwrap();
        assert_eq!(files.class, 0, "class 0 has the most labelled cells");
        let sheet = image::open(&files.similarity).unwrap();
        // One row: image, class mask, 2 maps, each 96 px wide (a square image).
        assert_eq!(
            (sheet.width(), sheet.height()),
            (4 * 96 + 5 * 4, 96 + 2 * 4)
        );
        assert!(image::open(&files.usage).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
