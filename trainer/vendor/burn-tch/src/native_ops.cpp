// Native libtorch kernels for the training ops that burn otherwise builds out of generic tensor
// operations (added to the vendored burn-tch; see VENDORED.md):
//
// - convolution backward: burn's default computes the input gradient as a transposed
//   convolution and the weight gradient as a convolution over swapped batch/channel axes, shapes
//   for which oneDNN has no fast kernel; at::convolution_backward calls oneDNN's backward-data and
//   backward-weights primitives, as PyTorch's autograd does.
// - batch norm (train forward, train backward, inference): burn's defaults are a dozen elementwise
//   ops and reductions each; ATen's are one fused kernel per pass.
//
// tch-rs exposes none of these (its generated API lacks convolution_backward and
// native_batch_norm_backward). Tensors cross as tch's C handles (`at::Tensor*`, owned by tch);
// results are returned as new heap tensors that tch takes ownership of. Errors come back as a
// malloc'd message (the caller frees it), never as an exception across the FFI boundary.

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

namespace {
char *error_message(const std::exception &e) { return strdup(e.what()); }
}  // namespace

extern "C" {

// Gradients of a (non-transposed) convolution with respect to its input and/or its weight.
// `dims` spatial dimensions; `stride`, `padding` and `dilation` hold `dims` values each.
char *burn_tch_convolution_backward(const at::Tensor *grad_output, const at::Tensor *input,
                                    const at::Tensor *weight, const int64_t *stride,
                                    const int64_t *padding, const int64_t *dilation, int64_t dims,
                                    int64_t groups, int want_input, int want_weight,
                                    at::Tensor **grad_input, at::Tensor **grad_weight) {
  try {
    std::vector<int64_t> output_padding(dims, 0);
    auto grads = at::convolution_backward(
        *grad_output, *input, *weight, c10::nullopt, at::IntArrayRef(stride, dims),
        at::IntArrayRef(padding, dims), at::IntArrayRef(dilation, dims), /*transposed=*/false,
        output_padding, groups, {want_input != 0, want_weight != 0, false});
    if (want_input) *grad_input = new at::Tensor(std::get<0>(grads));
    if (want_weight) *grad_weight = new at::Tensor(std::get<1>(grads));
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e);
  }
}

// Batch norm with the batch's own statistics. Returns the output, the per-channel mean and the
// biased variance. ATen's training kernel reports only 1/sqrt(var + eps) directly, and recovering
// the variance from that loses precision for small variances; its running-statistics update,
// with momentum 1 on zeroed buffers, writes the mean and the unbiased variance instead, from
// which the biased one is one multiplication away.
char *burn_tch_batch_norm_train(const at::Tensor *input, const at::Tensor *gamma,
                                const at::Tensor *beta, double eps, at::Tensor **output,
                                at::Tensor **mean, at::Tensor **variance) {
  try {
    const int64_t channels = input->size(1);
    const int64_t per_channel = input->numel() / channels;
    auto running_mean = at::zeros({channels}, input->options());
    auto running_var = at::zeros({channels}, input->options());
    auto out = at::native_batch_norm(*input, *gamma, *beta, running_mean, running_var,
                                     /*training=*/true, /*momentum=*/1.0, eps);
    if (per_channel > 1) {
      running_var.mul_(static_cast<double>(per_channel - 1) / static_cast<double>(per_channel));
    } else {
      running_var.zero_();  // one value per channel: the biased variance is 0
    }
    *output = new at::Tensor(std::get<0>(out));
    *mean = new at::Tensor(running_mean);
    *variance = new at::Tensor(running_var);
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e);
  }
}

// Gradients of burn_tch_batch_norm_train with respect to the input, gamma and beta.
char *burn_tch_batch_norm_train_backward(const at::Tensor *input, const at::Tensor *gamma,
                                         const at::Tensor *mean, const at::Tensor *variance,
                                         double eps, const at::Tensor *grad_output,
                                         at::Tensor **grad_input, at::Tensor **grad_gamma,
                                         at::Tensor **grad_beta) {
  try {
    auto invstd = (*variance + eps).rsqrt();
    auto grads = at::native_batch_norm_backward(*grad_output, *input, *gamma, at::Tensor(),
                                                at::Tensor(), *mean, invstd, /*train=*/true, eps,
                                                {true, true, true});
    *grad_input = new at::Tensor(std::get<0>(grads));
    *grad_gamma = new at::Tensor(std::get<1>(grads));
    *grad_beta = new at::Tensor(std::get<2>(grads));
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e);
  }
}

// Batch norm with given statistics (evaluation).
char *burn_tch_batch_norm(const at::Tensor *input, const at::Tensor *gamma, const at::Tensor *beta,
                          const at::Tensor *mean, const at::Tensor *variance, double eps,
                          at::Tensor **output) {
  try {
    auto out = at::batch_norm(*input, *gamma, *beta, *mean, *variance, /*training=*/false,
                              /*momentum=*/0.0, eps, /*cudnn_enabled=*/true);
    *output = new at::Tensor(out);
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e);
  }
}

}  // extern "C"
