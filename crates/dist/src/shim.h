// What shim.cpp and shim_nccl.cpp share: the handle types and the exception-to-message guard.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

struct DistStore {
  c10::intrusive_ptr<c10d::Store> store;
};

struct DistGroup {
  c10::intrusive_ptr<c10d::Backend> pg;
};

struct DistWork {
  c10::intrusive_ptr<c10d::Work> work;
};

inline char *dist_message(const std::string &what) {
  char *out = static_cast<char *>(std::malloc(what.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, what.c_str(), what.size() + 1);
  }
  return out;
}

// c10::Error's what() carries a C++ backtrace after the message; keep the message only.
inline char *dist_error(const c10::Error &e) {
  return dist_message(e.msg());
}

#define DIST_TRY try {
#define DIST_CATCH                                                              \
  }                                                                             \
  catch (const c10::Error &e) {                                                 \
    return dist_error(e);                                                       \
  }                                                                             \
  catch (const std::exception &e) {                                             \
    return dist_message(e.what());                                              \
  }                                                                             \
  catch (...) {                                                                 \
    return dist_message("unknown C++ exception");                               \
  }                                                                             \
  return nullptr;
