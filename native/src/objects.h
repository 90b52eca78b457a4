// Connection and domain handles. A JS object owns a shared_ptr to its state; the state owns the libvirt
// pointer. Calls take their own libvirt reference for the duration of the call, so close() or GC never
// frees a pointer that another thread is using.
#pragma once

#include "runtime.h"

namespace vm {

struct DomState;

struct ConnState {
  std::mutex m;
  virConnectPtr conn = nullptr;  // null once closed
  std::string uri;
  std::vector<std::weak_ptr<DomState>> doms;  // handles to free on close
  std::vector<std::shared_ptr<Sink>> sinks;   // event subscriptions
  std::shared_ptr<Sink> closeSink;
  std::shared_ptr<Sink>* closeOpaque = nullptr;  // opaque given to virConnectRegisterCloseCallback
  int nextSinkId = 1;

  ~ConnState();
  virConnectPtr Acquire();  // a new reference, or null when closed
  // Marks the state closed and returns the libvirt teardown to run on a native thread (or null if
  // already closed). onJsThread: also release JS callbacks (only allowed on the JS thread).
  std::function<void()> Detach(bool onJsThread);
};

struct DomState {
  std::shared_ptr<ConnState> cs;
  virDomainPtr dom = nullptr;  // guarded by cs->m; null once the connection is closed
  std::string name;
  std::string uuid;
  ~DomState();
  virDomainPtr Acquire();
};

// A virDomainPtr produced on a worker that may never reach JS; freed off the JS thread.
struct OwnedDom {
  virDomainPtr d = nullptr;
  std::string name;
  std::string uuid;
  ~OwnedDom();
  bool Fill(LvError& err);  // name + uuid
};

class NativeConnection : public Napi::ObjectWrap<NativeConnection> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<ConnState> cs);
  explicit NativeConnection(const Napi::CallbackInfo& info);
  ~NativeConnection() override;

 private:
  std::shared_ptr<ConnState> cs_;
  Napi::Value GetHostname(const Napi::CallbackInfo& info);
  Napi::Value GetLibVersion(const Napi::CallbackInfo& info);
  Napi::Value GetVersion(const Napi::CallbackInfo& info);
  Napi::Value GetCapabilities(const Napi::CallbackInfo& info);
  Napi::Value GetHostUuid(const Napi::CallbackInfo& info);
  Napi::Value ListAllDomains(const Napi::CallbackInfo& info);
  Napi::Value LookupByName(const Napi::CallbackInfo& info);
  Napi::Value LookupByUuid(const Napi::CallbackInfo& info);
  Napi::Value DefineXml(const Napi::CallbackInfo& info);
  Napi::Value CreateXml(const Napi::CallbackInfo& info);
  Napi::Value SetKeepAlive(const Napi::CallbackInfo& info);
  Napi::Value SubscribeEvents(const Napi::CallbackInfo& info);
  Napi::Value UnsubscribeEvents(const Napi::CallbackInfo& info);
  Napi::Value IsAlive(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
};

class NativeDomain : public Napi::ObjectWrap<NativeDomain> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<DomState> ds);
  explicit NativeDomain(const Napi::CallbackInfo& info);

 private:
  std::shared_ptr<DomState> ds_;
  Napi::Value GetInfo(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  Napi::Value GetXmlDesc(const Napi::CallbackInfo& info);
  Napi::Value Create(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value Undefine(const Napi::CallbackInfo& info);
  Napi::Value MigrateToUri3(const Napi::CallbackInfo& info);
  Napi::Value GetJobStats(const Napi::CallbackInfo& info);
  Napi::Value AbortJob(const Napi::CallbackInfo& info);
  Napi::Value MigrateSetMaxDowntime(const Napi::CallbackInfo& info);
  Napi::Value MigrateSetMaxSpeed(const Napi::CallbackInfo& info);
  Napi::Value MigrateStartPostCopy(const Napi::CallbackInfo& info);
  Napi::Value QemuMonitorCommand(const Napi::CallbackInfo& info);
  Napi::Value MemoryStats(const Napi::CallbackInfo& info);
  // dirtyrate.cc
  Napi::Value StartDirtyRateCalc(const Napi::CallbackInfo& info);
  Napi::Value GetDirtyRateStats(const Napi::CallbackInfo& info);
};

// Turns a worker-produced domain into a JS NativeDomain (JS thread); sets err if the connection closed.
Napi::Value AdoptDomain(Napi::Env env, const std::shared_ptr<ConnState>& cs, OwnedDom& od, LvError& err);

Napi::Value Open(const Napi::CallbackInfo& info);

// Helpers to run a call holding a connection / domain reference.
template <typename T>
Napi::Value WithConn(Napi::Env env, const std::shared_ptr<ConnState>& cs,
                     std::function<void(virConnectPtr, T&, LvError&)> work,
                     std::function<Napi::Value(Napi::Env, T&, LvError&)> done,
                     std::function<void(Napi::Env)> fin = nullptr) {
  virConnectPtr c = cs->Acquire();
  if (!c) {
    if (fin) fin(env);
    LvError e;
    e.SetClosed();
    return Rejected(env, e);
  }
  auto hold = std::make_shared<ConnHold>(c);
  auto out = std::make_shared<T>();
  return Schedule(
      env, [hold, out, work](LvError& err) { work(hold->c, *out, err); },
      [out, done](Napi::Env e, LvError& err) { return done(e, *out, err); }, false, std::move(fin));
}

template <typename T>
Napi::Value WithDom(Napi::Env env, const std::shared_ptr<DomState>& ds,
                    std::function<void(virDomainPtr, T&, LvError&)> work,
                    std::function<Napi::Value(Napi::Env, T&, LvError&)> done, bool ownThread = false) {
  virDomainPtr d = ds->Acquire();
  if (!d) {
    LvError e;
    e.SetClosed();
    return Rejected(env, e);
  }
  auto hold = std::make_shared<DomHold>(d);
  auto out = std::make_shared<T>();
  return Schedule(
      env, [hold, out, work](LvError& err) { work(hold->d, *out, err); },
      [out, done](Napi::Env e, LvError& err) { return done(e, *out, err); }, ownThread);
}

struct Nothing {};

}  // namespace vm
