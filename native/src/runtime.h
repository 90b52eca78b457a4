// Threading runtime shared by the addon: a private worker pool (not libuv's), dedicated threads for
// long calls, and one thread-safe function per Node environment that carries every completion and
// every libvirt event back to the JS thread.
#pragma once

#include <napi.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace vm {

// A libvirt error captured on the thread that made the failing call (libvirt errors are thread-local).
struct LvError {
  bool set = false;
  int code = 0;
  int domain = 0;
  std::string message;

  void Capture(const char* fallback);
  void Set(int c, int d, std::string msg) {
    set = true;
    code = c;
    domain = d;
    message = std::move(msg);
  }
  void SetClosed() { Set(VIR_ERR_INVALID_CONN, VIR_FROM_NONE, "connection is closed"); }
};

Napi::Error MakeJsError(Napi::Env env, const LvError& e);

// Something to run on the JS thread. Destructors must be safe on any thread (env teardown).
struct Job {
  virtual ~Job() = default;
  virtual void OnMain(Napi::Env env) = 0;
};

void CallJob(Napi::Env env, Napi::Function, std::nullptr_t*, Job* job);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Job, CallJob>;

// Owner of the per-env TSFN. `alive` is cleared by an env cleanup hook that runs before Node tears the
// TSFN down, so native threads never touch a freed TSFN.
struct Completion {
  std::mutex m;
  bool alive = true;
  Tsfn tsfn;
  void Post(Job* job);
};

// Per-environment state (instance data).
struct EnvData {
  std::shared_ptr<Completion> comp;
  size_t pending = 0;  // promises in flight; TSFN is ref'd only while > 0
  Napi::FunctionReference connCtor;
  Napi::FunctionReference domCtor;
};

EnvData& GetEnvData(Napi::Env env);
void InitRuntime(Napi::Env env);

// Private pool for short calls; grows on demand so a hung call never starves the others.
void PoolSubmit(std::function<void()> fn);
size_t PoolThreadCount();

// RAII references released on whatever thread drops them (always a native thread in practice).
struct ConnHold {
  virConnectPtr c;
  explicit ConnHold(virConnectPtr c_) : c(c_) {}
  ~ConnHold() {
    if (c) virConnectClose(c);
  }
};
struct DomHold {
  virDomainPtr d;
  explicit DomHold(virDomainPtr d_) : d(d_) {}
  ~DomHold() {
    if (d) virDomainFree(d);
  }
};

// A promise-backed call: exec() on a native thread, then ok() on the JS thread.
struct Task : Job {
  Napi::Promise::Deferred deferred;
  LvError err;
  std::function<void(LvError&)> exec;
  std::function<Napi::Value(Napi::Env, LvError&)> ok;
  std::function<void(Napi::Env)> fin;  // JS thread, on success and failure
  explicit Task(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  void OnMain(Napi::Env env) override;
};

// Schedules a task. `ownThread` runs it on a fresh std::thread (for calls that block for minutes).
Napi::Value Schedule(Napi::Env env, std::function<void(LvError&)> exec,
                     std::function<Napi::Value(Napi::Env, LvError&)> ok, bool ownThread = false,
                     std::function<void(Napi::Env)> fin = nullptr);

// A promise rejected asynchronously with a libvirt-style error (no native thread involved).
Napi::Value Rejected(Napi::Env env, const LvError& e);

// A JS callback that native threads may target (events, close notifications).
// The JS reference is only created/reset on the JS thread; destruction never touches JS.
struct Sink {
  std::shared_ptr<Completion> comp;
  Napi::FunctionReference fn;
  bool active = true;  // JS thread only
  int id = 0;
  std::vector<int> callbackIds;          // libvirt event callback ids (guarded by ConnState::m)
  std::atomic<bool> opaqueFreed{false};  // close-callback opaque released by libvirt
  Sink(Napi::Env env, Napi::Function f, std::shared_ptr<Completion> c);
  void Deactivate();  // JS thread only
};

// Argument helpers (throw Napi::TypeError).
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what);
double ArgUInt(const Napi::CallbackInfo& info, size_t i, const char* what, double def, double max);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* what);

// Flattened typed parameters (numbers only; strings are skipped).
using NumParams = std::vector<std::pair<std::string, double>>;
void FlattenParams(virTypedParameterPtr params, int n, NumParams& out);
Napi::Object NumParamsToJs(Napi::Env env, int type, const NumParams& p);

void EnsureEventLoop();

}  // namespace vm
