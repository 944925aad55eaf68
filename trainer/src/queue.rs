//! The FIFO queue of negative keys (MoCo, DenseCL, CP²): `[K, c]`, initialised random-normal and
//! L2-normalised like MoCo's; enqueuing wraps around, so any batch size works with any K.

use burn::tensor::{Device, Distribution, Tensor};

use crate::dist::World;
use crate::loss::l2_normalize;

#[derive(Debug, Clone)]
pub struct Queue {
    /// `[K, c]`, L2-normalised rows; never requires grad.
    pub keys: Tensor<2>,
    /// Next row to overwrite.
    pub ptr: usize,
    /// Rows written so far (saturates at K): how much of the queue holds real keys.
    pub filled: usize,
}

impl Queue {
    pub fn new(len: usize, dim: usize, device: &Device) -> Queue {
        let keys = Tensor::<2>::random([len, dim], Distribution::Normal(0.0, 1.0), device);
        Queue {
            keys: l2_normalize(keys, 1).detach(),
            ptr: 0,
            filled: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Enqueues every rank's `k` in rank order (MoCo's `concat_all_gather` before
    /// `_dequeue_and_enqueue`), so that every rank's queue stays the same; `k` alone on one
    /// process.
    pub fn enqueue_from_all_ranks(&mut self, k: Tensor<2>, world: &World) -> anyhow::Result<()> {
        self.enqueue(world.all_gather(k.detach())?);
        Ok(())
    }

    /// Writes `k` (`[n, c]`) at the pointer, wrapping around the end.
    pub fn enqueue(&mut self, k: Tensor<2>) {
        let [n, c] = k.dims();
        let len = self.len();
        let k = k.detach();
        if n >= len {
            // More keys than slots: keep the last `len`, aligned so the pointer logic still holds.
            self.keys = k.slice([n - len..n, 0..c]);
            self.ptr = 0;
            self.filled = len;
            return;
        }
        let first = n.min(len - self.ptr);
        let keys = std::mem::replace(&mut self.keys, Tensor::zeros([1, 1], &k.device()));
        let mut keys = keys.slice_assign(
            [self.ptr..self.ptr + first, 0..c],
            k.clone().slice([0..first, 0..c]),
        );
        if first < n {
            keys = keys.slice_assign([0..n - first, 0..c], k.slice([first..n, 0..c]));
        }
        self.keys = keys;
        self.ptr = (self.ptr + n) % len;
        self.filled = (self.filled + n).min(len);
    }
}
