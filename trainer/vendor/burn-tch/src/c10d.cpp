// PyTorch's own collective engine (c10d) for data-parallel training, reached from Rust (added to
// the vendored burn-tch; see VENDORED.md). Nothing here implements a collective: the rendezvous is
// c10d's TCPStore with torchrun's conventions, the transport is ProcessGroupGloo (CPU), and the
// all-reduce, all-gather and broadcast are its algorithms. What this file adds is the bucketing
// DDP does (many gradients flattened into a few large messages) and error handling that never
// lets an exception cross the FFI: every function returns NULL or a malloc'd message.
//
// ProcessGroupGloo.hpp needs gloo's headers, which libtorch's wheel does not ship; the layout of
// every gloo type the class holds is a pointer, so any gloo release's headers declare the same
// class (scripts/setup.sh fetches Debian's libgloo-dev headers into libtorch's include folder).
// Without them (BURN_TCH_C10D_GLOO undefined) the group cannot be created and says why.

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#ifdef BURN_TCH_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace {
char *message(const char *what) { return strdup(what); }
}  // namespace

#ifdef BURN_TCH_C10D_GLOO

struct BurnTchGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank;
  int world;
  std::chrono::milliseconds timeout;
};

namespace {
void wait(const c10::intrusive_ptr<c10d::Work> &work, const BurnTchGroup *g) {
  work->wait(g->timeout);
}
}  // namespace

extern "C" {

// Joins the group: rank 0 hosts the TCPStore on `host:port`, every rank connects to it, then the
// Gloo group connects every pair of ranks. Blocks until all `world` ranks have joined or
// `timeout_ms` passes (the same timeout then bounds every collective).
char *burn_tch_c10d_new(const char *host, uint16_t port, int rank, int world,
                        int64_t timeout_ms, BurnTchGroup **out) {
  try {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions store_options;
    store_options.port = port;
    store_options.isServer = rank == 0;
    store_options.numWorkers = world;
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), store_options);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // GLOO_SOCKET_IFNAME picks the interface as torch.distributed does; otherwise the address the
    // host name resolves to (loopback when it resolves to nothing usable).
    const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname != nullptr && ifname[0] != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 2;
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    *out = new BurnTchGroup{store, backend, rank, world, timeout};
    return nullptr;
  } catch (const std::exception &e) {
    return message(e.what());
  }
}

void burn_tch_c10d_free(BurnTchGroup *g) { delete g; }

// Sums `n` tensors across ranks (divides by the world size when `mean`), flattened into buckets
// of at most `bucket_bytes` (DDP's 25 MiB by default) so that a ResNet's ~160 gradients take a
// handful of messages. Writes `n` new tensors (views of the reduced buckets, disjoint) to `out`.
char *burn_tch_c10d_all_reduce(BurnTchGroup *g, const at::Tensor *const *tensors, int64_t n,
                               int64_t bucket_bytes, int mean, at::Tensor **out) {
  try {
    int64_t start = 0;
    while (start < n) {
      // One bucket: consecutive tensors of one dtype and device up to the byte budget.
      int64_t end = start;
      int64_t bytes = 0;
      do {
        bytes += tensors[end]->numel() * tensors[end]->element_size();
        ++end;
      } while (end < n && bytes + tensors[end]->numel() * tensors[end]->element_size() <=
                              bucket_bytes &&
               tensors[end]->scalar_type() == tensors[start]->scalar_type() &&
               tensors[end]->device() == tensors[start]->device());
      std::vector<at::Tensor> flat;
      flat.reserve(end - start);
      for (int64_t i = start; i < end; ++i) flat.push_back(tensors[i]->reshape({-1}));
      std::vector<at::Tensor> bucket{at::cat(flat)};
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      wait(g->backend->allreduce(bucket, options), g);
      if (mean) bucket[0].div_(static_cast<double>(g->world));
      int64_t offset = 0;
      for (int64_t i = start; i < end; ++i) {
        const int64_t numel = tensors[i]->numel();
        out[i] = new at::Tensor(bucket[0].narrow(0, offset, numel).view(tensors[i]->sizes()));
        offset += numel;
      }
      start = end;
    }
    return nullptr;
  } catch (const std::exception &e) {
    return message(e.what());
  }
}

// Every rank's `tensor` (same shape on all ranks), concatenated along the first axis in rank
// order.
char *burn_tch_c10d_all_gather(BurnTchGroup *g, const at::Tensor *tensor, at::Tensor **out) {
  try {
    auto input = tensor->contiguous();
    std::vector<at::Tensor> inputs{input};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < g->world; ++r) outputs[0].push_back(at::empty_like(input));
    wait(g->backend->allgather(outputs, inputs), g);
    *out = new at::Tensor(at::cat(outputs[0], 0));
    return nullptr;
  } catch (const std::exception &e) {
    return message(e.what());
  }
}

// `root`'s `tensor` on every rank (a new tensor; the input is not modified).
char *burn_tch_c10d_broadcast(BurnTchGroup *g, const at::Tensor *tensor, int root,
                              at::Tensor **out) {
  try {
    std::vector<at::Tensor> buffer{tensor->contiguous().clone()};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    wait(g->backend->broadcast(buffer, options), g);
    *out = new at::Tensor(buffer[0]);
    return nullptr;
  } catch (const std::exception &e) {
    return message(e.what());
  }
}

char *burn_tch_c10d_barrier(BurnTchGroup *g) {
  try {
    wait(g->backend->barrier(), g);
    return nullptr;
  } catch (const std::exception &e) {
    return message(e.what());
  }
}

}  // extern "C"

#else  // no gloo headers at build time

struct BurnTchGroup {};

extern "C" {

char *burn_tch_c10d_new(const char *, uint16_t, int, int, int64_t, BurnTchGroup **) {
  return message(
      "this trainer was built without gloo's headers, so it has no process group; run "
      "scripts/setup.sh --libtorch (it puts them beside libtorch's) and rebuild");
}
void burn_tch_c10d_free(BurnTchGroup *g) { delete g; }
char *burn_tch_c10d_all_reduce(BurnTchGroup *, const at::Tensor *const *, int64_t, int64_t, int,
                               at::Tensor **) {
  return message("no process group in this build");
}
char *burn_tch_c10d_all_gather(BurnTchGroup *, const at::Tensor *, at::Tensor **) {
  return message("no process group in this build");
}
char *burn_tch_c10d_broadcast(BurnTchGroup *, const at::Tensor *, int, at::Tensor **) {
  return message("no process group in this build");
}
char *burn_tch_c10d_barrier(BurnTchGroup *) { return message("no process group in this build"); }

}  // extern "C"

#endif
