//! Module records as bytes: what checkpoints store, and loading records that may come from
//! elsewhere (another run, another architecture) without panicking.

use anyhow::{bail, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Tensor};

/// A module's parameters and buffers as one byte record.
pub fn record_bytes<M: Module>(m: &M) -> Result<Vec<u8>> {
    Ok(m.clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_vec())
}

/// Loads a record written by [`record_bytes`] for a module of the same structure.
pub fn load_module<M: Module>(m: M, bytes: &[u8]) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(m.load_record(record))
}

/// [`load_module`] for records from elsewhere: a record that does not fit the module is an
/// error, not a panic (burn panics on a shape mismatch).
pub fn load_module_lenient<M: Module>(m: M, bytes: &[u8]) -> Result<M> {
    // The panic hook is process-wide: two loads swapping it at once could leave the silent one
    // installed for good (and every later panic message lost).
    static HOOK_SWAP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _swap = HOOK_SWAP.lock().unwrap_or_else(|e| e.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load_module(m, bytes)));
    std::panic::set_hook(hook);
    match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            bail!("the record does not match the model: {msg}")
        }
    }
}

struct CountParams(usize);

impl ModuleVisitor for CountParams {
    fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
        self.0 += 1;
    }
}

/// Number of float tensors a module holds (parameters and BN running statistics alike).
pub fn param_tensors<M: Module>(m: &M) -> usize {
    let mut c = CountParams(0);
    m.visit(&mut c);
    c.0
}
