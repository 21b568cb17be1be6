// C ABI over PyTorch's c10d engine: TCPStore rendezvous, ProcessGroupGloo and its collectives on
// at::Tensor handles (tch's C_tensor is an at::Tensor*). Every call catches every C++ exception
// and hands its message back as a malloc'ed string (NULL on success), freed by dist_free_string.
#include "shim.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <chrono>
#include <string>
#include <vector>

extern "C" {

void dist_free_string(char *s) { std::free(s); }

char *dist_store_new(const char *host, uint16_t port, int world_size,
                     int is_master, int64_t timeout_ms, int wait_workers,
                     DistStore **out) {
  DIST_TRY
  *out = nullptr;
  c10d::TCPStoreOptions opts;
  opts.port = port;
  opts.isServer = is_master != 0;
  opts.numWorkers = static_cast<std::size_t>(world_size);
  opts.waitWorkers = wait_workers != 0;
  opts.timeout = std::chrono::milliseconds(timeout_ms);
  auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
  *out = new DistStore{store};
  DIST_CATCH
}

void dist_store_free(DistStore *s) { delete s; }

// Rank 0 publishes its world size in the store; every other rank reads it (waiting up to the
// store's timeout) into *master_world_size, so that a rank started with another WORLD_SIZE
// fails at once, naming it, instead of timing out in the group's connection.
char *dist_store_world_size(DistStore *s, int rank, int world_size,
                            int *master_world_size) {
  DIST_TRY
  const std::string key = "cvlab/dist/world_size";
  if (rank == 0) {
    std::string v = std::to_string(world_size);
    s->store->set(key, std::vector<uint8_t>(v.begin(), v.end()));
    *master_world_size = world_size;
  } else {
    std::vector<uint8_t> v = s->store->get(key);
    *master_world_size = std::stoi(std::string(v.begin(), v.end()));
  }
  DIST_CATCH
}

char *dist_gloo_new(DistStore *store, int rank, int world_size,
                    int64_t timeout_ms, DistGroup **out) {
  DIST_TRY
  *out = nullptr;
  auto opts = c10d::ProcessGroupGloo::Options::create(
      std::chrono::milliseconds(timeout_ms));
  opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store->store, rank,
                                                        world_size, opts);
  *out = new DistGroup{pg};
  DIST_CATCH
}

void dist_group_free(DistGroup *g) { delete g; }

// Sum over the ranks, in place; the Work is waited on with dist_work_wait.
char *dist_all_reduce_sum(DistGroup *g, at::Tensor *t, DistWork **out) {
  DIST_TRY
  *out = nullptr;
  std::vector<at::Tensor> tensors{*t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  *out = new DistWork{g->pg->allreduce(tensors, opts)};
  DIST_CATCH
}

char *dist_broadcast(DistGroup *g, at::Tensor *t, int root, DistWork **out) {
  DIST_TRY
  *out = nullptr;
  std::vector<at::Tensor> tensors{*t};
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  *out = new DistWork{g->pg->broadcast(tensors, opts)};
  DIST_CATCH
}

// Every rank's input into outputs[0..n) (one per rank, same shape as the input).
char *dist_all_gather(DistGroup *g, at::Tensor **outputs, int n,
                      at::Tensor *input, DistWork **out) {
  DIST_TRY
  *out = nullptr;
  std::vector<std::vector<at::Tensor>> outs(1);
  for (int i = 0; i < n; ++i) {
    outs[0].push_back(*outputs[i]);
  }
  std::vector<at::Tensor> ins{*input};
  *out = new DistWork{g->pg->allgather(outs, ins)};
  DIST_CATCH
}

// Every rank's input, concatenated along dim 0 into one flat output (world_size * numel).
char *dist_all_gather_flat(DistGroup *g, at::Tensor *output, at::Tensor *input,
                           DistWork **out) {
  DIST_TRY
  *out = nullptr;
  *out = new DistWork{g->pg->_allgather_base(*output, *input)};
  DIST_CATCH
}

char *dist_barrier(DistGroup *g, DistWork **out) {
  DIST_TRY
  *out = nullptr;
  *out = new DistWork{g->pg->barrier()};
  DIST_CATCH
}

// Blocks until the work is done, failed (its error) or timeout_ms passed (a timeout error);
// timeout_ms <= 0 waits as long as the backend's own timeout allows.
char *dist_work_wait(DistWork *w, int64_t timeout_ms) {
  DIST_TRY
  if (timeout_ms > 0) {
    w->work->wait(std::chrono::milliseconds(timeout_ms));
  } else {
    w->work->wait();
  }
  DIST_CATCH
}

void dist_work_free(DistWork *w) { delete w; }

} // extern "C"
