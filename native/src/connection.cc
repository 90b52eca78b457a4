#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "objects.h"

namespace vm {

// ---------------------------------------------------------------------------------------------
// Events (libvirt's event-loop thread -> JS thread)

namespace {

enum EventKind { kLifecycle, kIteration, kJobCompleted };

struct EventJob : Job {
  std::shared_ptr<Sink> sink;
  EventKind kind = kLifecycle;
  std::string name;
  std::string uuid;
  int a = 0;
  int b = 0;
  NumParams stats;

  void OnMain(Napi::Env env) override {
    if (!sink->active || sink->fn.IsEmpty()) return;
    Napi::HandleScope scope(env);
    Napi::Object o = Napi::Object::New(env);
    static const char* kinds[] = {"lifecycle", "migration-iteration", "job-completed"};
    o.Set("kind", kinds[kind]);
    o.Set("domainUuid", uuid);
    o.Set("domainName", name);
    switch (kind) {
      case kLifecycle:
        o.Set("event", a);
        o.Set("detail", b);
        break;
      case kIteration:
        o.Set("iteration", a);
        break;
      case kJobCompleted:
        // The event carries no job type: it is by definition a completed job.
        o.Set("stats", NumParamsToJs(env, VIR_DOMAIN_JOB_COMPLETED, stats));
        break;
    }
    sink->fn.Call({o});
  }
};

EventJob* NewEvent(void* opaque, virDomainPtr dom, EventKind kind) {
  auto* j = new EventJob();
  j->sink = *static_cast<std::shared_ptr<Sink>*>(opaque);
  j->kind = kind;
  const char* n = virDomainGetName(dom);
  if (n) j->name = n;
  char buf[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(dom, buf) == 0) j->uuid = buf;
  return j;
}

int OnLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  EventJob* j = NewEvent(opaque, dom, kLifecycle);
  j->a = event;
  j->b = detail;
  j->sink->comp->Post(j);
  return 0;
}

void OnIteration(virConnectPtr, virDomainPtr dom, int iteration, void* opaque) {
  EventJob* j = NewEvent(opaque, dom, kIteration);
  j->a = iteration;
  j->sink->comp->Post(j);
}

void OnJobCompleted(virConnectPtr, virDomainPtr dom, virTypedParameterPtr params, int n, void* opaque) {
  EventJob* j = NewEvent(opaque, dom, kJobCompleted);
  FlattenParams(params, n, j->stats);  // params are freed by libvirt after we return
  j->sink->comp->Post(j);
}

void FreeSinkOpaque(void* opaque) {
  auto* p = static_cast<std::shared_ptr<Sink>*>(opaque);
  (*p)->opaqueFreed = true;
  delete p;
}

struct CloseJob : Job {
  std::shared_ptr<Sink> sink;
  int reason;
  CloseJob(std::shared_ptr<Sink> s, int r) : sink(std::move(s)), reason(r) {}
  void OnMain(Napi::Env env) override {
    if (!sink->active || sink->fn.IsEmpty()) return;
    Napi::HandleScope scope(env);
    sink->fn.Call({Napi::Number::New(env, reason)});
  }
};

void OnConnClose(virConnectPtr, int reason, void* opaque) {
  auto sink = *static_cast<std::shared_ptr<Sink>*>(opaque);
  sink->comp->Post(new CloseJob(sink, reason));
}

void Deregister(virConnectPtr c, const std::vector<int>& ids) {
  for (int id : ids) virConnectDomainEventDeregisterAny(c, id);
}

Napi::Value Resolved(Napi::Env env) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Resolve(env.Undefined());
  return d.Promise();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// State

ConnState::~ConnState() {
  auto teardown = Detach(false);
  if (teardown) PoolSubmit(teardown);
}

virConnectPtr ConnState::Acquire() {
  std::lock_guard<std::mutex> l(m);
  if (!conn) return nullptr;
  virConnectRef(conn);
  return conn;
}

std::function<void()> ConnState::Detach(bool onJsThread) {
  std::vector<std::shared_ptr<DomState>> alive;  // released after the lock (~DomState takes it)
  std::lock_guard<std::mutex> l(m);
  if (!conn) return nullptr;
  virConnectPtr c = conn;
  conn = nullptr;
  std::vector<virDomainPtr> ds;
  for (auto& w : doms) {
    if (auto d = w.lock()) {
      if (d->dom) ds.push_back(d->dom);
      d->dom = nullptr;
      alive.push_back(std::move(d));
    }
  }
  doms.clear();
  std::vector<int> ids;
  for (auto& s : sinks) {
    ids.insert(ids.end(), s->callbackIds.begin(), s->callbackIds.end());
    if (onJsThread) s->Deactivate();
  }
  sinks.clear();
  if (closeSink && onJsThread) closeSink->Deactivate();
  std::shared_ptr<Sink>* opaque = closeOpaque;
  closeOpaque = nullptr;
  std::shared_ptr<Sink> cSink = closeSink;
  return [c, ds, ids, opaque, cSink] {
    Deregister(c, ids);
    if (opaque) {
      virConnectUnregisterCloseCallback(c, OnConnClose);
      // Drivers without close-callback support accept the registration but never free the opaque.
      if (!cSink->opaqueFreed) delete opaque;
    }
    for (virDomainPtr d : ds) virDomainFree(d);
    virConnectClose(c);
  };
}

DomState::~DomState() {
  virDomainPtr d = nullptr;
  {
    std::lock_guard<std::mutex> l(cs->m);
    d = dom;
    dom = nullptr;
  }
  // The last domain reference can hold the last connection reference: never disconnect on JS thread.
  if (d) PoolSubmit([d] { virDomainFree(d); });
}

virDomainPtr DomState::Acquire() {
  std::lock_guard<std::mutex> l(cs->m);
  if (!cs->conn || !dom) return nullptr;
  virDomainRef(dom);
  return dom;
}

OwnedDom::~OwnedDom() {
  if (d) {
    virDomainPtr x = d;
    PoolSubmit([x] { virDomainFree(x); });
  }
}

bool OwnedDom::Fill(LvError& err) {
  const char* n = virDomainGetName(d);
  char buf[VIR_UUID_STRING_BUFLEN];
  if (!n || virDomainGetUUIDString(d, buf) < 0) {
    err.Capture("cannot read domain name/uuid");
    return false;
  }
  name = n;
  uuid = buf;
  return true;
}

Napi::Value AdoptDomain(Napi::Env env, const std::shared_ptr<ConnState>& cs, OwnedDom& od, LvError& err) {
  auto ds = std::make_shared<DomState>();
  ds->cs = cs;
  ds->name = od.name;
  ds->uuid = od.uuid;
  {
    std::lock_guard<std::mutex> l(cs->m);
    if (!cs->conn) {
      err.SetClosed();
      return env.Undefined();
    }
    ds->dom = od.d;
    od.d = nullptr;
    auto& v = cs->doms;
    v.erase(std::remove_if(v.begin(), v.end(), [](const std::weak_ptr<DomState>& w) { return w.expired(); }),
            v.end());
    v.push_back(ds);
  }
  return NativeDomain::NewInstance(env, ds);
}

// ---------------------------------------------------------------------------------------------
// open()

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string uri = ArgString(info, 0, "uri");
  Napi::Function onClose = ArgFunction(info, 1, "onClose");
  EnsureEventLoop();  // must precede the first connection
  auto sink = std::make_shared<Sink>(env, onClose, GetEnvData(env).comp);
  struct R {
    virConnectPtr c = nullptr;
    std::shared_ptr<Sink>* opaque = nullptr;
    bool adopted = false;
    ~R() {
      if (c) {  // never reached JS (env teardown): close off-thread
        virConnectPtr x = c;
        std::shared_ptr<Sink>* op = opaque;
        PoolSubmit([x, op] {
          if (op) virConnectUnregisterCloseCallback(x, OnConnClose);
          virConnectClose(x);
        });
      }
    }
  };
  auto r = std::make_shared<R>();
  return Schedule(
      env,
      [uri, sink, r](LvError& err) {
        virConnectPtr c = virConnectOpenAuth(uri.empty() ? nullptr : uri.c_str(), virConnectAuthPtrDefault, 0);
        if (!c) {
          err.Capture("failed to open connection");
          return;
        }
        auto* op = new std::shared_ptr<Sink>(sink);
        if (virConnectRegisterCloseCallback(c, OnConnClose, op, FreeSinkOpaque) < 0) {
          delete op;  // libvirt does not call freecb on failure
          op = nullptr;
        }
        r->c = c;
        r->opaque = op;
      },
      [uri, sink, r](Napi::Env e, LvError&) -> Napi::Value {
        auto cs = std::make_shared<ConnState>();
        cs->conn = r->c;
        cs->uri = uri;
        cs->closeSink = sink;
        cs->closeOpaque = r->opaque;
        r->c = nullptr;
        r->adopted = true;
        return NativeConnection::NewInstance(e, cs);
      },
      false,
      [sink, r](Napi::Env) {
        if (!r->c && !r->adopted) sink->Deactivate();  // open failed
      });
}

// ---------------------------------------------------------------------------------------------
// NativeConnection

Napi::Function NativeConnection::Define(Napi::Env env) {
  return DefineClass(env, "NativeConnection",
                     {
                         InstanceMethod<&NativeConnection::GetHostname>("getHostname"),
                         InstanceMethod<&NativeConnection::GetLibVersion>("getLibVersion"),
                         InstanceMethod<&NativeConnection::GetVersion>("getVersion"),
                         InstanceMethod<&NativeConnection::GetCapabilities>("getCapabilities"),
                         InstanceMethod<&NativeConnection::GetHostUuid>("getHostUuid"),
                         InstanceMethod<&NativeConnection::ListAllDomains>("listAllDomains"),
                         InstanceMethod<&NativeConnection::LookupByName>("lookupByName"),
                         InstanceMethod<&NativeConnection::LookupByUuid>("lookupByUuid"),
                         InstanceMethod<&NativeConnection::DefineXml>("defineXml"),
                         InstanceMethod<&NativeConnection::CreateXml>("createXml"),
                         InstanceMethod<&NativeConnection::SetKeepAlive>("setKeepAlive"),
                         InstanceMethod<&NativeConnection::SubscribeEvents>("subscribeEvents"),
                         InstanceMethod<&NativeConnection::UnsubscribeEvents>("unsubscribeEvents"),
                         InstanceMethod<&NativeConnection::IsAlive>("isAlive"),
                         InstanceMethod<&NativeConnection::Close>("close"),
                     });
}

Napi::Object NativeConnection::NewInstance(Napi::Env env, std::shared_ptr<ConnState> cs) {
  return GetEnvData(env).connCtor.New({Napi::External<std::shared_ptr<ConnState>>::New(env, &cs)});
}

NativeConnection::NativeConnection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeConnection>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "use openConnection() to create a connection");
  cs_ = *info[0].As<Napi::External<std::shared_ptr<ConnState>>>().Data();
}

NativeConnection::~NativeConnection() {
  // Garbage-collected without close(): release everything off the JS thread.
  if (cs_) {
    auto teardown = cs_->Detach(true);
    if (teardown) PoolSubmit(teardown);
  }
}

namespace {
// Returns a malloc'd string from libvirt as std::string, freeing it.
bool TakeString(char* s, std::string& out, LvError& err, const char* what) {
  if (!s) {
    err.Capture(what);
    return false;
  }
  out = s;
  free(s);
  return true;
}

bool HostUuidFromCaps(const std::string& caps, std::string& out) {
  size_t host = caps.find("<host>");
  if (host == std::string::npos) return false;
  size_t hostEnd = caps.find("</host>", host);
  size_t u = caps.find("<uuid>", host);
  if (u == std::string::npos || (hostEnd != std::string::npos && u > hostEnd)) return false;
  u += 6;
  size_t e = caps.find("</uuid>", u);
  if (e == std::string::npos) return false;
  std::string v = caps.substr(u, e - u);
  size_t a = v.find_first_not_of(" \t\r\n");
  size_t b = v.find_last_not_of(" \t\r\n");
  if (a == std::string::npos) return false;
  out = v.substr(a, b - a + 1);
  return true;
}
}  // namespace

Napi::Value NativeConnection::GetHostname(const Napi::CallbackInfo& info) {
  return WithConn<std::string>(
      info.Env(), cs_,
      [](virConnectPtr c, std::string& out, LvError& err) {
        TakeString(virConnectGetHostname(c), out, err, "virConnectGetHostname failed");
      },
      [](Napi::Env env, std::string& out, LvError&) { return Napi::String::New(env, out); });
}

Napi::Value NativeConnection::GetLibVersion(const Napi::CallbackInfo& info) {
  return WithConn<unsigned long>(
      info.Env(), cs_,
      [](virConnectPtr c, unsigned long& v, LvError& err) {
        if (virConnectGetLibVersion(c, &v) < 0) err.Capture("virConnectGetLibVersion failed");
      },
      [](Napi::Env env, unsigned long& v, LvError&) { return Napi::Number::New(env, static_cast<double>(v)); });
}

Napi::Value NativeConnection::GetVersion(const Napi::CallbackInfo& info) {
  return WithConn<unsigned long>(
      info.Env(), cs_,
      [](virConnectPtr c, unsigned long& v, LvError& err) {
        if (virConnectGetVersion(c, &v) < 0) err.Capture("virConnectGetVersion failed");
      },
      [](Napi::Env env, unsigned long& v, LvError&) { return Napi::Number::New(env, static_cast<double>(v)); });
}

Napi::Value NativeConnection::GetCapabilities(const Napi::CallbackInfo& info) {
  return WithConn<std::string>(
      info.Env(), cs_,
      [](virConnectPtr c, std::string& out, LvError& err) {
        TakeString(virConnectGetCapabilities(c), out, err, "virConnectGetCapabilities failed");
      },
      [](Napi::Env env, std::string& out, LvError&) { return Napi::String::New(env, out); });
}

Napi::Value NativeConnection::GetHostUuid(const Napi::CallbackInfo& info) {
  return WithConn<std::string>(
      info.Env(), cs_,
      [](virConnectPtr c, std::string& out, LvError& err) {
        std::string caps;
        if (!TakeString(virConnectGetCapabilities(c), caps, err, "virConnectGetCapabilities failed")) return;
        if (HostUuidFromCaps(caps, out)) return;
        // Fallback: SMBIOS system uuid from sysinfo (<system><entry name='uuid'>).
        char* si = virConnectGetSysinfo(c, 0);
        if (si) {
          std::string s = si;
          free(si);
          size_t sys = s.find("<system>");
          size_t e = sys == std::string::npos ? sys : s.find("<entry name='uuid'>", sys);
          if (e != std::string::npos) {
            e += std::strlen("<entry name='uuid'>");
            size_t end = s.find('<', e);
            if (end != std::string::npos && end > e) {
              out = s.substr(e, end - e);
              return;
            }
          }
        }
        err.Set(VIR_ERR_NO_SUPPORT, VIR_FROM_CAPABILITIES, "host UUID not reported (no <host><uuid> in capabilities)");
      },
      [](Napi::Env env, std::string& out, LvError&) { return Napi::String::New(env, out); });
}

namespace {
struct Summary {
  int id;
  std::string uuid, name;
  int state;
  bool active, persistent;
};
}  // namespace

Napi::Value NativeConnection::ListAllDomains(const Napi::CallbackInfo& info) {
  return WithConn<std::vector<Summary>>(
      info.Env(), cs_,
      [](virConnectPtr c, std::vector<Summary>& out, LvError& err) {
        // Persistence from a second (filtered) listing and activity from the id: per-domain
        // IsActive/IsPersistent RPCs were seen stalling for seconds during migrations.
        std::vector<std::string> persistent;
        virDomainPtr* doms = nullptr;
        int n = virConnectListAllDomains(c, &doms, VIR_CONNECT_LIST_DOMAINS_PERSISTENT);
        if (n < 0) {
          err.Capture("virConnectListAllDomains failed");
          return;
        }
        char buf[VIR_UUID_STRING_BUFLEN];
        for (int i = 0; i < n; i++) {
          if (virDomainGetUUIDString(doms[i], buf) == 0) persistent.emplace_back(buf);
          virDomainFree(doms[i]);
        }
        free(doms);
        doms = nullptr;
        n = virConnectListAllDomains(c, &doms, 0);
        if (n < 0) {
          err.Capture("virConnectListAllDomains failed");
          return;
        }
        for (int i = 0; i < n; i++) {
          virDomainPtr d = doms[i];
          if (err.set) {
            virDomainFree(d);
            continue;
          }
          Summary s;
          const char* name = virDomainGetName(d);
          int st = 0, reason = 0;
          unsigned int id = virDomainGetID(d);  // cached in the handle: no RPC
          s.id = id == static_cast<unsigned int>(-1) ? -1 : static_cast<int>(id);
          if (name && virDomainGetUUIDString(d, buf) == 0 && virDomainGetState(d, &st, &reason, 0) == 0) {
            s.name = name;
            s.uuid = buf;
            s.state = st;
            s.active = s.id != -1;
            s.persistent = std::find(persistent.begin(), persistent.end(), s.uuid) != persistent.end();
            out.push_back(std::move(s));
          } else {
            virErrorPtr e = virGetLastError();
            // A transient domain that vanished between listing and querying is not an error.
            if (!e || e->code != VIR_ERR_NO_DOMAIN) err.Capture("cannot query domain");
          }
          virDomainFree(d);
        }
        free(doms);
      },
      [](Napi::Env env, std::vector<Summary>& out, LvError&) {
        Napi::Array a = Napi::Array::New(env, out.size());
        for (size_t i = 0; i < out.size(); i++) {
          const Summary& s = out[i];
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", s.id);
          o.Set("uuid", s.uuid);
          o.Set("name", s.name);
          o.Set("state", s.state);
          o.Set("active", s.active);
          o.Set("persistent", s.persistent);
          a.Set(static_cast<uint32_t>(i), o);
        }
        return a;
      });
}

namespace {
Napi::Value DomainCall(Napi::Env env, const std::shared_ptr<ConnState>& cs,
                       std::function<virDomainPtr(virConnectPtr)> fn, const char* what) {
  std::string w = what;
  return WithConn<OwnedDom>(
      env, cs,
      [fn, w](virConnectPtr c, OwnedDom& od, LvError& err) {
        od.d = fn(c);
        if (!od.d) {
          err.Capture((w + " failed").c_str());
          return;
        }
        od.Fill(err);
      },
      [cs](Napi::Env e, OwnedDom& od, LvError& err) { return AdoptDomain(e, cs, od, err); });
}
}  // namespace

Napi::Value NativeConnection::LookupByName(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  return DomainCall(
      info.Env(), cs_, [name](virConnectPtr c) { return virDomainLookupByName(c, name.c_str()); },
      "virDomainLookupByName");
}

Napi::Value NativeConnection::LookupByUuid(const Napi::CallbackInfo& info) {
  std::string uuid = ArgString(info, 0, "uuid");
  return DomainCall(
      info.Env(), cs_, [uuid](virConnectPtr c) { return virDomainLookupByUUIDString(c, uuid.c_str()); },
      "virDomainLookupByUUIDString");
}

Napi::Value NativeConnection::DefineXml(const Napi::CallbackInfo& info) {
  std::string xml = ArgString(info, 0, "xml");
  return DomainCall(
      info.Env(), cs_, [xml](virConnectPtr c) { return virDomainDefineXML(c, xml.c_str()); }, "virDomainDefineXML");
}

Napi::Value NativeConnection::CreateXml(const Napi::CallbackInfo& info) {
  std::string xml = ArgString(info, 0, "xml");
  unsigned int flags = static_cast<unsigned int>(ArgUInt(info, 1, "flags", 0, UINT_MAX));
  return DomainCall(
      info.Env(), cs_, [xml, flags](virConnectPtr c) { return virDomainCreateXML(c, xml.c_str(), flags); },
      "virDomainCreateXML");
}

Napi::Value NativeConnection::SetKeepAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber())
    throw Napi::TypeError::New(env, "intervalSec must be a number");
  double iv = info[0].As<Napi::Number>().DoubleValue();
  if (!(iv >= -1 && iv <= INT_MAX) || static_cast<double>(static_cast<int>(iv)) != iv)
    throw Napi::TypeError::New(env, "intervalSec must be an integer >= -1");
  int interval = static_cast<int>(iv);
  unsigned int count = static_cast<unsigned int>(ArgUInt(info, 1, "count", -1, UINT_MAX));
  return WithConn<Nothing>(
      env, cs_,
      [interval, count](virConnectPtr c, Nothing&, LvError& err) {
        if (virConnectSetKeepAlive(c, interval, count) < 0) err.Capture("virConnectSetKeepAlive failed");
      },
      [](Napi::Env e, Nothing&, LvError&) { return e.Undefined(); });
}

Napi::Value NativeConnection::SubscribeEvents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Function fn = ArgFunction(info, 0, "callback");
  auto sink = std::make_shared<Sink>(env, fn, GetEnvData(env).comp);
  {
    std::lock_guard<std::mutex> l(cs_->m);
    sink->id = cs_->nextSinkId++;
  }
  auto cs = cs_;
  auto registered = std::make_shared<std::atomic<bool>>(false);
  return WithConn<Nothing>(
      env, cs_,
      [sink, cs, registered](virConnectPtr c, Nothing&, LvError& err) {
        struct Reg {
          int id;
          virConnectDomainEventGenericCallback cb;
          bool required;
        };
        const Reg regs[] = {
            {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle), true},
            {VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, VIR_DOMAIN_EVENT_CALLBACK(OnIteration), false},
            {VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, VIR_DOMAIN_EVENT_CALLBACK(OnJobCompleted), false},
        };
        std::vector<int> ids;
        for (const Reg& r : regs) {
          auto* op = new std::shared_ptr<Sink>(sink);
          int id = virConnectDomainEventRegisterAny(c, nullptr, r.id, r.cb, op, FreeSinkOpaque);
          if (id < 0) {
            delete op;  // not registered: libvirt will not call freecb
            if (r.required) {
              err.Capture("virConnectDomainEventRegisterAny failed");
              Deregister(c, ids);
              return;
            }
            continue;  // optional event not supported by this driver/daemon
          }
          ids.push_back(id);
        }
        {
          std::lock_guard<std::mutex> l(cs->m);
          if (cs->conn) {
            sink->callbackIds = ids;
            cs->sinks.push_back(sink);
            *registered = true;
            return;
          }
        }
        Deregister(c, ids);  // closed while we were registering
        err.SetClosed();
      },
      [sink](Napi::Env e, Nothing&, LvError&) { return Napi::Number::New(e, sink->id); },
      [sink, registered](Napi::Env) {
        if (!*registered) sink->Deactivate();  // failed: drop the JS callback on the JS thread
      });
}

Napi::Value NativeConnection::UnsubscribeEvents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int id = static_cast<int>(ArgUInt(info, 0, "subscription id", -1, INT_MAX));
  std::shared_ptr<Sink> sink;
  virConnectPtr c = nullptr;
  {
    std::lock_guard<std::mutex> l(cs_->m);
    auto& v = cs_->sinks;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if ((*it)->id == id) {
        sink = *it;
        v.erase(it);
        break;
      }
    }
    if (sink && cs_->conn) {
      c = cs_->conn;
      virConnectRef(c);
    }
  }
  if (!sink) return Resolved(env);  // unknown or already removed: idempotent
  sink->Deactivate();
  if (!c) return Resolved(env);
  auto hold = std::make_shared<ConnHold>(c);
  std::vector<int> ids = sink->callbackIds;
  return Schedule(
      env, [hold, ids](LvError&) { Deregister(hold->c, ids); }, nullptr);
}

Napi::Value NativeConnection::IsAlive(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> l(cs_->m);
  // virConnectIsAlive only inspects local client state; it does not wait on the network.
  return Napi::Boolean::New(info.Env(), cs_->conn != nullptr && virConnectIsAlive(cs_->conn) == 1);
}

Napi::Value NativeConnection::Close(const Napi::CallbackInfo& info) {
  auto teardown = cs_->Detach(true);
  if (!teardown) return Resolved(info.Env());  // double close is a no-op
  return Schedule(
      info.Env(), [teardown](LvError&) { teardown(); }, nullptr);
}

}  // namespace vm
