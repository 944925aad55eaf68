//! RoIAlign with torchvision's semantics (`roi_align`, aligned = True, default sampling ratio:
//! ⌈roi size / output size⌉ samples per bin and axis), as SoCo uses it on each FPN level
//! (METHODS.md §3.4).
//!
//! Boxes are data, not parameters, so the sampling pattern is computed on the host: for each output
//! bin, the feature positions its bilinear samples touch and their weights (divided by the bin's
//! sample count). On the device RoIAlign is then one gather of feature rows and one scatter-add into
//! the bins — both differentiable with respect to the features, which is all SoCo needs.

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

/// Where RoIAlign's samples land: for entry `e`, feature row `index[e]` (of the `[n·h·w, c]`
/// flattened map) times `weight[e]` adds into output bin `bin[e]` (of `rois · out²`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoiPlan {
    pub index: Vec<i64>,
    pub weight: Vec<f32>,
    pub bin: Vec<i64>,
    pub rois: usize,
    pub out: usize,
}

/// torchvision's bilinear sample at (y, x) of an `h × w` map: up to four (row, weight) pairs;
/// nothing outside [−1, h] × [−1, w].
fn bilinear(y: f64, x: f64, h: usize, w: usize, mut emit: impl FnMut(usize, f64)) {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
        return;
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut y0, mut x0) = (y as usize, x as usize);
    let (y1, x1);
    if y0 >= h - 1 {
        y0 = h - 1;
        y1 = h - 1;
        y = y0 as f64;
    } else {
        y1 = y0 + 1;
    }
    if x0 >= w - 1 {
        x0 = w - 1;
        x1 = w - 1;
        x = x0 as f64;
    } else {
        x1 = x0 + 1;
    }
    let (ly, lx) = (y - y0 as f64, x - x0 as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    emit(y0 * w + x0, hy * hx);
    emit(y0 * w + x1, hy * lx);
    emit(y1 * w + x0, ly * hx);
    emit(y1 * w + x1, ly * lx);
}

impl RoiPlan {
    /// The plan for `boxes` (`[x1, y1, x2, y2]` in feature pixels, i.e. spatial scale 1) on
    /// image `batch[r]` of an `n × h × w` map, `out × out` bins, aligned (−0.5 pixel offset).
    pub fn new(boxes: &[[f32; 4]], batch: &[usize], h: usize, w: usize, out: usize) -> RoiPlan {
        assert_eq!(boxes.len(), batch.len());
        let mut plan = RoiPlan {
            rois: boxes.len(),
            out,
            ..RoiPlan::default()
        };
        for (r, (b, &n)) in boxes.iter().zip(batch).enumerate() {
            let [x1, y1, x2, y2] = b.map(|v| v as f64 - 0.5);
            let (rw, rh) = (x2 - x1, y2 - y1);
            let (bw, bh) = (rw / out as f64, rh / out as f64);
            let gw = (rw / out as f64).ceil().max(0.0) as usize;
            let gh = (rh / out as f64).ceil().max(0.0) as usize;
            let count = (gw * gh).max(1) as f64;
            let base = n * h * w;
            for py in 0..out {
                for px in 0..out {
                    let bin = ((r * out + py) * out + px) as i64;
                    for iy in 0..gh {
                        let y = y1 + py as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                        for ix in 0..gw {
                            let x = x1 + px as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                            bilinear(y, x, h, w, |pos, wt| {
                                if wt != 0.0 {
                                    plan.index.push((base + pos) as i64);
                                    plan.weight.push((wt / count) as f32);
                                    plan.bin.push(bin);
                                }
                            });
                        }
                    }
                }
            }
        }
        plan
    }

    /// RoIAlign of `features` `[n, c, h, w]` → `[rois, c, out, out]`.
    pub fn apply(&self, features: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = features.dims();
        let device: Device = features.device();
        let bins = self.rois * self.out * self.out;
        let zeros = Tensor::<2>::zeros([bins, c], &device);
        let pooled = if self.index.is_empty() {
            zeros
        } else {
            let e = self.index.len();
            let flat = features.permute([0, 2, 3, 1]).reshape([n * h * w, c]);
            let index =
                Tensor::<1, Int>::from_data(TensorData::new(self.index.clone(), [e]), &device);
            let bin = Tensor::<1, Int>::from_data(TensorData::new(self.bin.clone(), [e]), &device);
            let weight = Tensor::<1>::from_data(TensorData::new(self.weight.clone(), [e]), &device)
                .reshape([e, 1]);
            zeros.select_assign(
                0,
                bin,
                flat.select(0, index) * weight,
                IndexingUpdateOp::Add,
            )
        };
        pooled
            .reshape([self.rois, self.out, self.out, c])
            .permute([0, 3, 1, 2])
    }
}
