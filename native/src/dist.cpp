// Process-group collectives through libtorch's c10d: a TCPStore for rendezvous (rank 0 hosts it) and a
// ProcessGroupGloo for CPU tensors (NCCL only when built against a CUDA libtorch; untested here).
// Every collective waits for its work object synchronously; failures (timeouts, a peer that died, a
// mismatched call) surface as JavaScript Errors prefixed with the op name.
//
//   distInit(rank, worldSize, host, port, timeoutMs, initTimeoutMs?) -> undefined
//     timeoutMs bounds every collective; initTimeoutMs (default timeoutMs) bounds the rendezvous.
//   distAllReduce(tensor, "sum"|"avg"|"max"|"min"|"product") -> undefined (in place)
//   distBroadcast(tensor, root)                        -> undefined (in place)
//   distBarrier()                                      -> undefined
//   distDestroy()                                      -> undefined (no-op when not initialised)
//   distIsInitialized() / distRank() / distWorldSize() / distBackend()
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef DEDOS_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "common.h"

namespace dedos {

namespace {

struct DistState {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> gloo;
#ifdef DEDOS_CUDA
  c10::intrusive_ptr<c10d::ProcessGroup> nccl;
#endif
  int rank = -1;
  int worldSize = 0;
  std::chrono::milliseconds timeout{0};
};

// Deliberately leaked at process exit: tearing down Gloo's worker threads from a static destructor after a
// peer failed can block, and the OS reclaims sockets anyway. distDestroy() releases everything explicitly.
DistState* state = new DistState();

DistState& Require(const char* op) {
  if (!state->gloo) throw std::runtime_error(std::string(op) + ": the process group is not initialised (call distInit first)");
  return *state;
}

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::shared_ptr<::gloo::transport::Device> MakeDevice(const std::string& host) {
  // Over loopback every rank binds 127.0.0.1; across machines bind the interface named by GLOO_SOCKET_IFNAME,
  // else whatever this machine's hostname resolves to (Gloo falls back to loopback when it does not resolve).
  if (IsLoopback(host)) return c10d::ProcessGroupGloo::createDeviceForHostname(host);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

c10d::ProcessGroup& GroupFor(DistState& s, const at::Tensor& t) {
#ifdef DEDOS_CUDA
  if (t.is_cuda()) {
    if (!s.nccl) throw std::runtime_error("no NCCL process group for CUDA tensors");
    return *s.nccl;
  }
#endif
  if (!t.device().is_cpu()) throw std::runtime_error("only CPU tensors are supported by the Gloo backend");
  return *s.gloo;
}

void Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* op) {
  try {
    work->wait();
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string(op) + " failed: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(op) + " failed: " + e.what());
  }
}

// Runs `fn` on a dense tensor aliasing `t` (or on a contiguous copy that is copied back).
template <typename Fn>
void InPlace(at::Tensor& t, Fn fn) {
  if (t.is_contiguous()) {
    fn(t);
  } else {
    at::Tensor c = t.contiguous();
    fn(c);
    t.copy_(c);
  }
}

c10d::ReduceOp ParseOp(const std::string& op) {
  if (op == "sum" || op == "avg") return c10d::ReduceOp(c10d::ReduceOp::SUM);
  if (op == "max") return c10d::ReduceOp(c10d::ReduceOp::MAX);
  if (op == "min") return c10d::ReduceOp(c10d::ReduceOp::MIN);
  if (op == "product") return c10d::ReduceOp(c10d::ReduceOp::PRODUCT);
  throw std::invalid_argument("unknown reduce op '" + op + "' (expected sum, avg, max, min or product)");
}

}  // namespace

void InitDistributed(Napi::Env env, Napi::Object exports) {
  DEDOS_OP("distInit", {
    int64_t rank = ArgInt(info, 0);
    int64_t world = ArgInt(info, 1);
    std::string host = ArgString(info, 2);
    int64_t port = ArgInt(info, 3);
    int64_t timeoutMs = ArgInt(info, 4);
    int64_t initTimeoutMs = ArgOptInt(info, 5).value_or(timeoutMs);
    if (state->gloo) throw std::runtime_error("the process group is already initialised (call distDestroy first)");
    if (world < 1) throw std::invalid_argument("worldSize must be ≥ 1");
    if (rank < 0 || rank >= world) throw std::invalid_argument("rank must be in [0, worldSize)");
    if (port < 1 || port > 65535) throw std::invalid_argument("port must be in [1, 65535]");
    if (timeoutMs < 1 || initTimeoutMs < 1) throw std::invalid_argument("timeouts must be ≥ 1 ms");
    auto timeout = std::chrono::milliseconds(timeoutMs);
    auto initTimeout = std::chrono::milliseconds(initTimeoutMs);

    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<std::size_t>(world);
    so.waitWorkers = true;
    so.timeout = initTimeout;
    const std::string where = host + ":" + std::to_string(port) + " (rank " + std::to_string(rank) + " of " +
                              std::to_string(world) + ", timeout " + std::to_string(initTimeoutMs) + " ms)";
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroup> gloo;
    try {
      store = c10::make_intrusive<c10d::TCPStore>(host, so);
      // Wait here, under initTimeout, until every rank has arrived; Gloo's own connection below is then quick
      // and can run under the (possibly much shorter) collective timeout, which Gloo also uses for the mesh.
      if (store->add("dedos/init/arrived", 1) == world) store->set("dedos/init/ready", std::vector<uint8_t>{1});
      store->wait({"dedos/init/ready"}, initTimeout);
    } catch (const c10::Error& e) {
      throw std::runtime_error("rendezvous through the TCP store at " + where + " failed: " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw std::runtime_error("rendezvous through the TCP store at " + where + " failed: " + e.what());
    }
    try {
      // Gloo in libtorch 1.13 ignores per-call timeouts for most collectives: the group's timeout bounds them all.
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(MakeDevice(host));
      opts->threads = 2;
      gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(world), opts);
    } catch (const c10::Error& e) {
      throw std::runtime_error("connecting the Gloo process group via " + where + " failed: " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw std::runtime_error("connecting the Gloo process group via " + where + " failed: " + e.what());
    }

    state->store = store;
    state->gloo = gloo;
#ifdef DEDOS_CUDA
    if (at::hasCUDA()) {
      auto nopts = c10d::ProcessGroupNCCL::Options::create();
      nopts->timeout = timeout;
      state->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(rank), static_cast<int>(world), nopts);
    }
#endif
    state->rank = static_cast<int>(rank);
    state->worldSize = static_cast<int>(world);
    state->timeout = timeout;
    return env.Undefined();
  });

  DEDOS_OP("distAllReduce", {
    auto& s = Require("distAllReduce");
    at::Tensor& t = ArgTensor(info, 0);
    std::string op = ArgString(info, 1);
    c10d::AllreduceOptions o;
    o.reduceOp = ParseOp(op);
    o.timeout = s.timeout;
    if (op == "avg" && !at::isFloatingType(t.scalar_type())) {
      throw std::invalid_argument("avg needs a floating-point tensor");
    }
    auto& pg = GroupFor(s, t);
    InPlace(t, [&](at::Tensor& d) {
      std::vector<at::Tensor> ts{d};
      Wait(pg.allreduce(ts, o), "allreduce");
      if (op == "avg") d.div_(static_cast<double>(s.worldSize));
    });
    return env.Undefined();
  });

  DEDOS_OP("distBroadcast", {
    auto& s = Require("distBroadcast");
    at::Tensor& t = ArgTensor(info, 0);
    int64_t root = ArgInt(info, 1);
    if (root < 0 || root >= s.worldSize) throw std::invalid_argument("root must be in [0, worldSize)");
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = s.timeout;
    auto& pg = GroupFor(s, t);
    InPlace(t, [&](at::Tensor& d) {
      std::vector<at::Tensor> ts{d};
      Wait(pg.broadcast(ts, o), "broadcast");
    });
    return env.Undefined();
  });

  DEDOS_OP("distBarrier", {
    auto& s = Require("distBarrier");
    c10d::BarrierOptions o;
    o.timeout = s.timeout;
    Wait(s.gloo->barrier(o), "barrier");
    return env.Undefined();
  });

  DEDOS_OP("distDestroy", {
#ifdef DEDOS_CUDA
    state->nccl.reset();
#endif
    state->gloo.reset();
    state->store.reset();
    state->rank = -1;
    state->worldSize = 0;
    return env.Undefined();
  });

  DEDOS_OP("distIsInitialized", { return Napi::Boolean::New(env, static_cast<bool>(state->gloo)); });
  DEDOS_OP("distRank", { return Napi::Number::New(env, Require("distRank").rank); });
  DEDOS_OP("distWorldSize", { return Napi::Number::New(env, Require("distWorldSize").worldSize); });
  DEDOS_OP("distBackend", {
    auto& s = Require("distBackend");
#ifdef DEDOS_CUDA
    if (s.nccl) return Napi::String::New(env, "gloo+nccl");
#endif
    (void)s;
    return Napi::String::New(env, "gloo");
  });
}

}  // namespace dedos
