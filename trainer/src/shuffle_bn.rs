//! Shuffle-BN on one device: the key batch is permuted and split into sub-batches that are
//! batch-normalised separately, then un-permuted — what MoCo's maintainers advise for a single
//! GPU (facebookresearch/moco#47). Keys thus never share BN statistics with their own queries.
//! Used by every method with a MoCo-style key encoder (MoCo v2, DenseCL, CP²).

use burn::tensor::{Int, Tensor};
use config::KeyBatchNorm;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Runs `f` on `x` in shuffled sub-batches and returns the outputs in the original order.
pub fn shuffled_sub_batches<const D: usize>(
    x: Tensor<4>,
    mode: KeyBatchNorm,
    seed: u64,
    f: impl Fn(Tensor<4>) -> Tensor<D>,
) -> Tensor<D> {
    let n = x.dims()[0];
    let shards = match mode {
        KeyBatchNorm::ShuffledSubBatches(s) => s.clamp(1, n),
        KeyBatchNorm::Plain => 1,
    };
    if shards == 1 {
        return f(x);
    }
    let device = x.device();
    let mut perm: Vec<i64> = (0..n as i64).collect();
    perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut inverse = vec![0i64; n];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p as usize] = i as i64;
    }
    let perm_t = Tensor::<1, Int>::from_ints(perm.as_slice(), &device);
    let x = x.select(0, perm_t);
    let per = n.div_ceil(shards);
    let outs: Vec<Tensor<D>> = (0..n)
        .step_by(per)
        .map(|s| f(x.clone().narrow(0, s, per.min(n - s))))
        .collect();
    let y = Tensor::cat(outs, 0);
    y.select(0, Tensor::<1, Int>::from_ints(inverse.as_slice(), &device))
}
