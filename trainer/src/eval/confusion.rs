//! The confusion matrix of a segmentation evaluation and the scores mmsegmentation reports from
//! it (`mmseg.evaluation.metrics.IoUMetric`): per-class IoU = intersection / union and accuracy =
//! intersection / labelled area, both accumulated over the whole dataset (not averaged per
//! image); mIoU and mAcc are the means over the classes where they are defined (a class neither
//! in the ground truth nor ever predicted has no IoU: NaN in mmseg, left out of the mean; a class
//! predicted but absent from the ground truth has IoU 0 and counts); aAcc = correct / labelled.

use anyhow::{bail, Result};

/// The label of pixels left out of training and evaluation.
pub const IGNORE: u8 = 255;

/// Counts of (ground-truth class, predicted class) pairs over labelled pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    classes: usize,
    /// Row-major `[gt][pred]`.
    counts: Vec<u64>,
}

impl Confusion {
    pub fn new(classes: usize) -> Confusion {
        Confusion {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Adds one image: `gt` and `pred` are label maps of the same size; `gt` pixels equal to
    /// [`IGNORE`] are skipped. A ground-truth or predicted value that is not a class is an error.
    pub fn add(&mut self, gt: &[u8], pred: &[u8]) -> Result<()> {
        if gt.len() != pred.len() {
            bail!(
                "ground truth has {} pixels, prediction {}",
                gt.len(),
                pred.len()
            );
        }
        let c = self.classes;
        // Checked before counting: a refused image leaves the matrix as it was.
        let bad = gt
            .iter()
            .zip(pred)
            .position(|(&g, &p)| g != IGNORE && (g as usize >= c || p as usize >= c));
        if let Some(i) = bad {
            bail!(
                "pixel {i}: label {} / prediction {} is not one of the {c} classes (or {IGNORE})",
                gt[i],
                pred[i]
            );
        }
        for (&g, &p) in gt.iter().zip(pred) {
            if g != IGNORE {
                self.counts[g as usize * c + p as usize] += 1;
            }
        }
        Ok(())
    }

    /// Adds another matrix (e.g. a worker's or another rank's).
    pub fn merge(&mut self, other: &Confusion) {
        assert_eq!(self.classes, other.classes);
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub fn count(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt * self.classes + pred]
    }

    fn intersection(&self, k: usize) -> u64 {
        self.count(k, k)
    }

    /// Pixels labelled `k`.
    pub fn label_area(&self, k: usize) -> u64 {
        (0..self.classes).map(|p| self.count(k, p)).sum()
    }

    /// Labelled pixels predicted as `k`.
    pub fn pred_area(&self, k: usize) -> u64 {
        (0..self.classes).map(|g| self.count(g, k)).sum()
    }

    /// Per-class IoU; None where the union is empty.
    pub fn iou(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|k| {
                let i = self.intersection(k);
                let union = self.label_area(k) + self.pred_area(k) - i;
                (union > 0).then(|| i as f64 / union as f64)
            })
            .collect()
    }

    /// Per-class accuracy (recall); None where the class has no labelled pixel.
    pub fn accuracy(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|k| {
                let area = self.label_area(k);
                (area > 0).then(|| self.intersection(k) as f64 / area as f64)
            })
            .collect()
    }

    /// Mean IoU over the classes that have one (NaN when none has).
    pub fn miou(&self) -> f64 {
        defined_mean(&self.iou())
    }

    /// Mean class accuracy over the classes present in the ground truth.
    pub fn macc(&self) -> f64 {
        defined_mean(&self.accuracy())
    }

    /// Overall pixel accuracy over labelled pixels (NaN when there is none).
    pub fn aacc(&self) -> f64 {
        let correct: u64 = (0..self.classes).map(|k| self.intersection(k)).sum();
        let labelled: u64 = self.counts.iter().sum();
        correct as f64 / labelled as f64
    }

    /// Labelled pixels in all.
    pub fn labelled(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The mean of the defined values, summed in order (as a Python `sum` would).
fn defined_mean(values: &[Option<f64>]) -> f64 {
    let defined: Vec<f64> = values.iter().flatten().copied().collect();
    defined.iter().sum::<f64>() / defined.len() as f64
}
