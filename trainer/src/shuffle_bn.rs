//! Shuffle-BN: keys are batch-normalised in shards drawn at random across the query order, so
//! they never share BN statistics with their own queries. Used by every method with a MoCo-style
//! key encoder (MoCo v2, DenseCL, CP², PLMoCo).
//!
//! On one process the key batch is permuted and split into sub-batches normalised separately,
//! then un-permuted — what MoCo's maintainers advise for a single GPU (facebookresearch/moco#47).
//! With several ranks it is MoCo's own cross-rank shuffle: every rank's key images are gathered,
//! the global batch is permuted (the same seed on every rank, so no permutation travels), each
//! rank encodes its slice of the permuted batch (in `s` sub-batches), the keys are gathered and
//! un-permuted, and each rank keeps the keys of its own images. The shards are therefore those a
//! single process with `ShuffledSubBatches(world × s)` would form on the concatenated batch.

use anyhow::Result;
use burn::tensor::{Int, Tensor};
use config::KeyBatchNorm;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::dist::World;

/// Runs `f` on `x` in shuffled sub-batches and returns the outputs in the original order.
pub fn shuffled_sub_batches<const D: usize>(
    x: Tensor<4>,
    mode: KeyBatchNorm,
    seed: u64,
    world: &World,
    f: impl Fn(Tensor<4>) -> Tensor<D>,
) -> Result<Tensor<D>> {
    let n = x.dims()[0];
    let shards = match mode {
        KeyBatchNorm::ShuffledSubBatches(s) => s.clamp(1, n),
        KeyBatchNorm::Plain => return Ok(f(x)),
    };
    if !world.is_distributed() {
        if shards == 1 {
            return Ok(f(x));
        }
        let (perm, inverse) = permutation(n, seed, &x.device());
        let y = in_sub_batches(x.select(0, perm), shards, &f);
        return Ok(y.select(0, inverse));
    }
    let device = x.device();
    let global = world.all_gather(x)?;
    let (perm, inverse) = permutation(n * world.world_size, seed, &device);
    let mine = global.select(0, perm).narrow(0, world.rank * n, n);
    let keys = world.all_gather(in_sub_batches(mine, shards, &f))?;
    Ok(keys.select(0, inverse).narrow(0, world.rank * n, n))
}

/// A seeded permutation of `0..n` and its inverse, as index tensors.
fn permutation(
    n: usize,
    seed: u64,
    device: &burn::tensor::Device,
) -> (Tensor<1, Int>, Tensor<1, Int>) {
    let mut perm: Vec<i64> = (0..n as i64).collect();
    perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut inverse = vec![0i64; n];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p as usize] = i as i64;
    }
    (
        Tensor::<1, Int>::from_ints(perm.as_slice(), device),
        Tensor::<1, Int>::from_ints(inverse.as_slice(), device),
    )
}

/// `f` on `shards` consecutive slices of `x`, concatenated.
fn in_sub_batches<const D: usize>(
    x: Tensor<4>,
    shards: usize,
    f: &impl Fn(Tensor<4>) -> Tensor<D>,
) -> Tensor<D> {
    let n = x.dims()[0];
    if shards == 1 {
        return f(x);
    }
    let per = n.div_ceil(shards);
    let outs: Vec<Tensor<D>> = (0..n)
        .step_by(per)
        .map(|s| f(x.clone().narrow(0, s, per.min(n - s))))
        .collect();
    Tensor::cat(outs, 0)
}
