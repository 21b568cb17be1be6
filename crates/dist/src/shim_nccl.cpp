// The NCCL half of the C ABI (cargo feature `nccl`): a c10d::ProcessGroupNCCL on the same
// TCPStore; the collectives of shim.cpp work on it unchanged (they call c10d::Backend's virtual
// methods), with CUDA tensors. Compiled only when build.rs finds the CUDA and NCCL headers.
#include "shim.h"

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>
#include <vector>

extern "C" {

char *dist_nccl_new(DistStore *store, int rank, int world_size,
                    int64_t timeout_ms, DistGroup **out) {
  DIST_TRY
  *out = nullptr;
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = std::chrono::milliseconds(timeout_ms);
  auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store->store, rank,
                                                        world_size, opts);
  *out = new DistGroup{pg};
  DIST_CATCH
}

// NCCL's barrier is an all-reduce on a device: name it (the rank's CUDA device).
char *dist_nccl_barrier(DistGroup *g, int device, DistWork **out) {
  DIST_TRY
  *out = nullptr;
  c10d::BarrierOptions opts;
  opts.device_ids = {device};
  opts.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device));
  *out = new DistWork{g->pg->barrier(opts)};
  DIST_CATCH
}

} // extern "C"
