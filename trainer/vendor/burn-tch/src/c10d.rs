//! PyTorch's c10d process group, for data-parallel training (added to the vendored burn-tch; see
//! VENDORED.md and `src/c10d.cpp`): TCPStore rendezvous and Gloo collectives on tch tensors.
//! Errors (a peer that died, a rendezvous or collective past its timeout) come back as messages;
//! nothing panics and no exception crosses the FFI.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr;
use std::time::Duration;

use tch::Tensor;
use torch_sys::C_tensor;

#[repr(C)]
struct BurnTchGroup {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn burn_tch_c10d_new(
        host: *const c_char,
        port: u16,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        out: *mut *mut BurnTchGroup,
    ) -> *mut c_char;
    fn burn_tch_c10d_free(group: *mut BurnTchGroup);
    fn burn_tch_c10d_all_reduce(
        group: *mut BurnTchGroup,
        tensors: *const *const C_tensor,
        n: i64,
        bucket_bytes: i64,
        mean: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn burn_tch_c10d_all_gather(
        group: *mut BurnTchGroup,
        tensor: *const C_tensor,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn burn_tch_c10d_broadcast(
        group: *mut BurnTchGroup,
        tensor: *const C_tensor,
        root: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn burn_tch_c10d_barrier(group: *mut BurnTchGroup) -> *mut c_char;
}

/// Takes the shim's message (malloc'd) into a `Result`.
fn check(what: &str, err: *mut c_char) -> Result<(), String> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    // SAFETY: allocated with malloc by strdup.
    unsafe { libc::free(err.cast()) };
    Err(format!("{what}: {}", msg.trim()))
}

/// Takes ownership of a tensor handle the shim allocated.
fn own(p: *mut C_tensor) -> Tensor {
    assert!(!p.is_null(), "c10d shim returned no tensor");
    // SAFETY: `p` is a fresh `new at::Tensor` that nothing else owns.
    unsafe { Tensor::from_ptr(p) }
}

/// One rank's membership of a Gloo process group.
pub struct ProcessGroup {
    group: *mut BurnTchGroup,
    rank: usize,
    world: usize,
}

// SAFETY: c10d's process groups are used from any thread (torch.distributed calls them from
// whichever thread runs Python); ours is used by one thread at a time (`&mut`-free API, but the
// trainer's loop is single-threaded).
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Joins the group of `world` ranks whose store rank 0 hosts on `host:port`; returns once all
    /// have joined, or an error after `timeout` (which also bounds every later collective).
    pub fn join(
        host: &str,
        port: u16,
        rank: usize,
        world: usize,
        timeout: Duration,
    ) -> Result<Self, String> {
        let host_c = CString::new(host).map_err(|_| format!("host {host:?} holds a NUL"))?;
        let mut group = ptr::null_mut();
        // SAFETY: a valid C string; `group` is written only on success.
        let err = unsafe {
            burn_tch_c10d_new(
                host_c.as_ptr(),
                port,
                rank as c_int,
                world as c_int,
                timeout.as_millis() as i64,
                &mut group,
            )
        };
        check("joining the process group", err)?;
        Ok(Self { group, rank, world })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.world
    }

    /// The element-wise sum (or mean) of `tensors` over all ranks, as new tensors, sent in
    /// buckets of at most `bucket_bytes`.
    pub fn all_reduce(
        &self,
        tensors: &[&Tensor],
        bucket_bytes: usize,
        mean: bool,
    ) -> Result<Vec<Tensor>, String> {
        let handles: Vec<*const C_tensor> = tensors.iter().map(|t| t.as_ptr()).collect();
        let mut out = vec![ptr::null_mut(); tensors.len()];
        // SAFETY: live tensors borrowed for the call; `out` has room for one handle each.
        let err = unsafe {
            burn_tch_c10d_all_reduce(
                self.group,
                handles.as_ptr(),
                handles.len() as i64,
                bucket_bytes as i64,
                mean as c_int,
                out.as_mut_ptr(),
            )
        };
        check("all-reduce", err)?;
        Ok(out.into_iter().map(own).collect())
    }

    /// Every rank's `tensor` (same shape everywhere) stacked along the first axis, rank order.
    pub fn all_gather(&self, tensor: &Tensor) -> Result<Tensor, String> {
        let mut out = ptr::null_mut();
        // SAFETY: a live tensor borrowed for the call.
        let err = unsafe { burn_tch_c10d_all_gather(self.group, tensor.as_ptr(), &mut out) };
        check("all-gather", err)?;
        Ok(own(out))
    }

    /// Rank `root`'s `tensor`, on every rank.
    pub fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<Tensor, String> {
        let mut out = ptr::null_mut();
        // SAFETY: a live tensor borrowed for the call.
        let err = unsafe {
            burn_tch_c10d_broadcast(self.group, tensor.as_ptr(), root as c_int, &mut out)
        };
        check("broadcast", err)?;
        Ok(own(out))
    }

    /// Returns once every rank has reached it.
    pub fn barrier(&self) -> Result<(), String> {
        // SAFETY: a live group.
        check("barrier", unsafe { burn_tch_c10d_barrier(self.group) })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by burn_tch_c10d_new, freed once.
        unsafe { burn_tch_c10d_free(self.group) };
    }
}
