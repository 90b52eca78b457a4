#include "runtime.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <thread>

namespace vm {

void LvError::Capture(const char* fallback) {
  set = true;
  virErrorPtr e = virGetLastError();
  if (e && e->code != VIR_ERR_OK) {
    code = e->code;
    domain = e->domain;
    message = e->message ? e->message : fallback;
  } else {
    code = VIR_ERR_INTERNAL_ERROR;
    domain = VIR_FROM_NONE;
    message = fallback;
  }
}

Napi::Error MakeJsError(Napi::Env env, const LvError& e) {
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::Number::New(env, e.code));
  err.Set("domain", Napi::Number::New(env, e.domain));
  err.Set("isLibvirtError", Napi::Boolean::New(env, true));
  return err;
}

// ---------------------------------------------------------------------------------------------
// Pool. Intentionally leaked: detached threads may still wait on it while the process exits.

namespace {
struct Pool {
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::function<void()>> q;
  size_t threads = 0;
  size_t idle = 0;
  static constexpr size_t kMax = 64;

  void Submit(std::function<void()> fn) {
    std::unique_lock<std::mutex> l(m);
    q.push_back(std::move(fn));
    if (q.size() > idle && threads < kMax) {
      threads++;
      std::thread([this] { Loop(); }).detach();
    } else {
      cv.notify_one();
    }
  }

  void Loop() {
    std::unique_lock<std::mutex> l(m);
    for (;;) {
      idle++;
      cv.wait(l, [this] { return !q.empty(); });
      idle--;
      auto fn = std::move(q.front());
      q.pop_front();
      l.unlock();
      fn();
      fn = nullptr;  // drop captures (libvirt refs) here, off the JS thread
      l.lock();
    }
  }
};
Pool* pool = new Pool();
}  // namespace

void PoolSubmit(std::function<void()> fn) { pool->Submit(std::move(fn)); }
size_t PoolThreadCount() {
  std::lock_guard<std::mutex> l(pool->m);
  return pool->threads;
}

// ---------------------------------------------------------------------------------------------
// libvirt's default event loop on its own native thread.

namespace {
void SilentErrorFunc(void*, virErrorPtr) {}  // errors are reported through promises, not stderr
std::once_flag eventOnce;
}  // namespace

void EnsureEventLoop() {
  std::call_once(eventOnce, [] {
    virInitialize();
    virSetErrorFunc(nullptr, SilentErrorFunc);
    if (virEventRegisterDefaultImpl() < 0) return;
    // Detached: it holds no libuv handle, so it never keeps Node alive.
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }).detach();
  });
}

// ---------------------------------------------------------------------------------------------
// Completion TSFN.

void CallJob(Napi::Env env, Napi::Function, std::nullptr_t*, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;
  // JS listeners are wrapped in binding.ts, so a throw here is Node-API refusing the call (e.g. a
  // terminating worker). Re-throwing would call std::terminate: drop it.
  try {
    owned->OnMain(env);
  } catch (const Napi::Error&) {
  }
}

void Completion::Post(Job* job) {
  std::lock_guard<std::mutex> l(m);
  if (!alive || tsfn.NonBlockingCall(job) != napi_ok) delete job;
}

EnvData& GetEnvData(Napi::Env env) { return *env.GetInstanceData<EnvData>(); }

void InitRuntime(Napi::Env env) {
  auto* data = new EnvData();
  data->comp = std::make_shared<Completion>();
  data->comp->tsfn = Tsfn::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                               "vmigrate-libvirt", 0, 1, nullptr);
  data->comp->tsfn.Unref(env);
  // Registered after the TSFN, so it runs before Node finalizes it (hooks run in reverse order).
  auto* keep = new std::shared_ptr<Completion>(data->comp);
  napi_add_env_cleanup_hook(
      env,
      [](void* arg) {
        auto* c = static_cast<std::shared_ptr<Completion>*>(arg);
        {
          std::lock_guard<std::mutex> l((*c)->m);
          (*c)->alive = false;
        }
        delete c;
      },
      keep);
  env.SetInstanceData<EnvData>(data);
}

// ---------------------------------------------------------------------------------------------
// Tasks.

void Task::OnMain(Napi::Env env) {
  EnvData& d = GetEnvData(env);
  if (--d.pending == 0) d.comp->tsfn.Unref(env);
  Napi::HandleScope scope(env);
  if (fin) fin(env);
  if (err.set) {
    deferred.Reject(MakeJsError(env, err).Value());
    return;
  }
  Napi::Value v;
  try {
    v = ok ? ok(env, err) : env.Undefined();
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
    return;
  }
  if (err.set)
    deferred.Reject(MakeJsError(env, err).Value());
  else
    deferred.Resolve(v);
}

Napi::Value Schedule(Napi::Env env, std::function<void(LvError&)> exec,
                     std::function<Napi::Value(Napi::Env, LvError&)> ok, bool ownThread,
                     std::function<void(Napi::Env)> fin) {
  EnvData& d = GetEnvData(env);
  auto* task = new Task(env);
  task->exec = std::move(exec);
  task->ok = std::move(ok);
  task->fin = std::move(fin);
  Napi::Promise promise = task->deferred.Promise();
  if (d.pending++ == 0) d.comp->tsfn.Ref(env);
  std::shared_ptr<Completion> comp = d.comp;
  auto run = [task, comp] {
    task->exec(task->err);
    task->exec = nullptr;  // release captured libvirt refs on this thread
    comp->Post(task);
  };
  if (ownThread) {
    try {
      std::thread(run).detach();
    } catch (const std::system_error&) {
      PoolSubmit(run);  // could not spawn: fall back to the pool rather than failing the call
    }
  } else {
    PoolSubmit(run);
  }
  return promise;
}

Napi::Value Rejected(Napi::Env env, const LvError& e) {
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  d.Reject(MakeJsError(env, e).Value());
  return d.Promise();
}

// ---------------------------------------------------------------------------------------------

Sink::Sink(Napi::Env env, Napi::Function f, std::shared_ptr<Completion> c) : comp(std::move(c)) {
  fn = Napi::Persistent(f);
  fn.SuppressDestruct();  // may be destroyed off the JS thread; Deactivate() releases the ref
}

void Sink::Deactivate() {
  active = false;
  if (fn.IsEmpty()) return;
  try {
    fn.Reset();
  } catch (const Napi::Error&) {
    // Env shutting down (called from finalizers): the reference dies with the env.
  }
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

double ArgUInt(const Napi::CallbackInfo& info, size_t i, const char* what, double def, double max) {
  if (info.Length() <= i || info[i].IsUndefined()) {
    if (def < 0) throw Napi::TypeError::New(info.Env(), std::string(what) + " is required");
    return def;
  }
  if (!info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || v < 0 || std::floor(v) != v || v > max)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an integer in [0, " +
                                               std::to_string(static_cast<uint64_t>(max)) + "]");
  return v;
}

Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsFunction())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a function");
  return info[i].As<Napi::Function>();
}

void FlattenParams(virTypedParameterPtr params, int n, NumParams& out) {
  for (int i = 0; i < n; i++) {
    const virTypedParameter& p = params[i];
    double v;
    switch (p.type) {
      case VIR_TYPED_PARAM_INT: v = p.value.i; break;
      case VIR_TYPED_PARAM_UINT: v = p.value.ui; break;
      case VIR_TYPED_PARAM_LLONG: v = static_cast<double>(p.value.l); break;
      case VIR_TYPED_PARAM_ULLONG: v = static_cast<double>(p.value.ul); break;
      case VIR_TYPED_PARAM_DOUBLE: v = p.value.d; break;
      case VIR_TYPED_PARAM_BOOLEAN: v = p.value.b ? 1 : 0; break;
      default: continue;  // strings do not fit JobStats
    }
    out.emplace_back(p.field, v);
  }
}

Napi::Object NumParamsToJs(Napi::Env env, int type, const NumParams& p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", Napi::Number::New(env, type));
  for (const auto& kv : p) o.Set(kv.first, Napi::Number::New(env, kv.second));
  return o;
}

}  // namespace vm
