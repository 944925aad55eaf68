//! Safe wrappers over `src/native_ops.cpp`: libtorch's own kernels for the convolution backward
//! and batch norm, which tch-rs does not expose (see VENDORED.md for why and what it measured).

use std::ffi::{CStr, c_char, c_int};
use std::ptr;

use tch::Tensor;
use torch_sys::C_tensor;

unsafe extern "C" {
    fn burn_tch_convolution_backward(
        grad_output: *const C_tensor,
        input: *const C_tensor,
        weight: *const C_tensor,
        stride: *const i64,
        padding: *const i64,
        dilation: *const i64,
        dims: i64,
        groups: i64,
        want_input: c_int,
        want_weight: c_int,
        grad_input: *mut *mut C_tensor,
        grad_weight: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn burn_tch_batch_norm_train(
        input: *const C_tensor,
        gamma: *const C_tensor,
        beta: *const C_tensor,
        eps: f64,
        output: *mut *mut C_tensor,
        mean: *mut *mut C_tensor,
        variance: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn burn_tch_batch_norm_train_backward(
        input: *const C_tensor,
        gamma: *const C_tensor,
        mean: *const C_tensor,
        variance: *const C_tensor,
        eps: f64,
        grad_output: *const C_tensor,
        grad_input: *mut *mut C_tensor,
        grad_gamma: *mut *mut C_tensor,
        grad_beta: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn burn_tch_batch_norm(
        input: *const C_tensor,
        gamma: *const C_tensor,
        beta: *const C_tensor,
        mean: *const C_tensor,
        variance: *const C_tensor,
        eps: f64,
        output: *mut *mut C_tensor,
    ) -> *mut c_char;
}

/// Panics with libtorch's message, as the rest of burn-tch does on a failed op (tch's
/// non-fallible methods panic too).
fn check(what: &str, err: *mut c_char) {
    if err.is_null() {
        return;
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    // SAFETY: allocated with malloc by strdup.
    unsafe { libc::free(err.cast()) };
    panic!("libtorch {what}: {msg}");
}

/// Takes ownership of a tensor handle the shim allocated.
fn own(p: *mut C_tensor) -> Tensor {
    assert!(!p.is_null(), "native op returned no tensor");
    // SAFETY: `p` is a fresh `new at::Tensor` that nothing else owns.
    unsafe { Tensor::from_ptr(p) }
}

/// Input and/or weight gradients of a convolution (symmetric padding, not transposed).
pub fn convolution_backward(
    grad_output: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    stride: &[i64],
    padding: &[i64],
    dilation: &[i64],
    groups: i64,
    want_input: bool,
    want_weight: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let dims = stride.len();
    assert!(padding.len() == dims && dilation.len() == dims);
    let (mut gi, mut gw) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: every handle is a live tensor borrowed for the call; the arrays hold `dims` values.
    let err = unsafe {
        burn_tch_convolution_backward(
            grad_output.as_ptr(),
            input.as_ptr(),
            weight.as_ptr(),
            stride.as_ptr(),
            padding.as_ptr(),
            dilation.as_ptr(),
            dims as i64,
            groups,
            want_input as c_int,
            want_weight as c_int,
            &mut gi,
            &mut gw,
        )
    };
    check("convolution_backward", err);
    (want_input.then(|| own(gi)), want_weight.then(|| own(gw)))
}

/// (output, mean, biased variance) of batch norm over the batch's own statistics.
pub fn batch_norm_train(
    input: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> (Tensor, Tensor, Tensor) {
    let (mut out, mut mean, mut var) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: live tensors borrowed for the call.
    let err = unsafe {
        burn_tch_batch_norm_train(
            input.as_ptr(),
            gamma.as_ptr(),
            beta.as_ptr(),
            eps,
            &mut out,
            &mut mean,
            &mut var,
        )
    };
    check("batch_norm_train", err);
    (own(out), own(mean), own(var))
}

/// (input, gamma, beta) gradients of [batch_norm_train].
pub fn batch_norm_train_backward(
    input: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    variance: &Tensor,
    eps: f64,
    grad_output: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (mut gi, mut gg, mut gb) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: live tensors borrowed for the call.
    let err = unsafe {
        burn_tch_batch_norm_train_backward(
            input.as_ptr(),
            gamma.as_ptr(),
            mean.as_ptr(),
            variance.as_ptr(),
            eps,
            grad_output.as_ptr(),
            &mut gi,
            &mut gg,
            &mut gb,
        )
    };
    check("batch_norm_train_backward", err);
    (own(gi), own(gg), own(gb))
}

/// Batch norm with the given statistics.
pub fn batch_norm(
    input: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    variance: &Tensor,
    eps: f64,
) -> Tensor {
    let mut out = ptr::null_mut();
    // SAFETY: live tensors borrowed for the call.
    let err = unsafe {
        burn_tch_batch_norm(
            input.as_ptr(),
            gamma.as_ptr(),
            beta.as_ptr(),
            mean.as_ptr(),
            variance.as_ptr(),
            eps,
            &mut out,
        )
    };
    check("batch_norm", err);
    own(out)
}
