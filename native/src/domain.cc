#include <libvirt/libvirt-qemu.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "objects.h"

namespace vm {

Napi::Function NativeDomain::Define(Napi::Env env) {
  return DefineClass(env, "NativeDomain",
                     {
                         InstanceMethod<&NativeDomain::GetInfo>("getInfo"),
                         InstanceMethod<&NativeDomain::GetState>("getState"),
                         InstanceMethod<&NativeDomain::GetXmlDesc>("getXmlDesc"),
                         InstanceMethod<&NativeDomain::Create>("create"),
                         InstanceMethod<&NativeDomain::Destroy>("destroy"),
                         InstanceMethod<&NativeDomain::Undefine>("undefine"),
                         InstanceMethod<&NativeDomain::MigrateToUri3>("migrateToUri3"),
                         InstanceMethod<&NativeDomain::GetJobStats>("getJobStats"),
                         InstanceMethod<&NativeDomain::AbortJob>("abortJob"),
                         InstanceMethod<&NativeDomain::MigrateSetMaxDowntime>("migrateSetMaxDowntime"),
                         InstanceMethod<&NativeDomain::MigrateSetMaxSpeed>("migrateSetMaxSpeed"),
                         InstanceMethod<&NativeDomain::MigrateStartPostCopy>("migrateStartPostCopy"),
                         InstanceMethod<&NativeDomain::QemuMonitorCommand>("qemuMonitorCommand"),
                         InstanceMethod<&NativeDomain::StartDirtyRateCalc>("startDirtyRateCalc"),
                         InstanceMethod<&NativeDomain::GetDirtyRateStats>("getDirtyRateStats"),
                         InstanceMethod<&NativeDomain::MemoryStats>("memoryStats"),
                     });
}

Napi::Object NativeDomain::NewInstance(Napi::Env env, std::shared_ptr<DomState> ds) {
  return GetEnvData(env).domCtor.New({Napi::External<std::shared_ptr<DomState>>::New(env, &ds)});
}

NativeDomain::NativeDomain(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeDomain>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "domains come from a Connection");
  ds_ = *info[0].As<Napi::External<std::shared_ptr<DomState>>>().Data();
  Napi::Object self = info.This().As<Napi::Object>();
  self.DefineProperties({
      Napi::PropertyDescriptor::Value("name", Napi::String::New(info.Env(), ds_->name), napi_enumerable),
      Napi::PropertyDescriptor::Value("uuid", Napi::String::New(info.Env(), ds_->uuid), napi_enumerable),
  });
}

namespace {
using Void = std::function<Napi::Value(Napi::Env, Nothing&, LvError&)>;
Napi::Value Undef(Napi::Env e, Nothing&, LvError&) { return e.Undefined(); }

// A call whose only result is success/failure.
Napi::Value Simple(Napi::Env env, const std::shared_ptr<DomState>& ds, std::function<int(virDomainPtr)> fn,
                   const char* what) {
  std::string w = what;
  return WithDom<Nothing>(
      env, ds,
      [fn, w](virDomainPtr d, Nothing&, LvError& err) {
        if (fn(d) < 0) err.Capture((w + " failed").c_str());
      },
      Undef);
}

enum class PType { Str, StrMulti, Int, ULL };
struct PDef {
  const char* name;
  PType type;
};
// VIR_MIGRATE_PARAM_* of libvirt 9.0 with their typed-parameter types.
const PDef kMigrateParams[] = {
    {VIR_MIGRATE_PARAM_URI, PType::Str},
    {VIR_MIGRATE_PARAM_DEST_NAME, PType::Str},
    {VIR_MIGRATE_PARAM_DEST_XML, PType::Str},
    {VIR_MIGRATE_PARAM_PERSIST_XML, PType::Str},
    {VIR_MIGRATE_PARAM_BANDWIDTH, PType::ULL},
    {VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY, PType::ULL},
    {VIR_MIGRATE_PARAM_GRAPHICS_URI, PType::Str},
    {VIR_MIGRATE_PARAM_LISTEN_ADDRESS, PType::Str},
    {VIR_MIGRATE_PARAM_MIGRATE_DISKS, PType::StrMulti},
    {VIR_MIGRATE_PARAM_DISKS_PORT, PType::Int},
    {VIR_MIGRATE_PARAM_DISKS_URI, PType::Str},
    {VIR_MIGRATE_PARAM_COMPRESSION, PType::StrMulti},
    {VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL, PType::Int},
    {VIR_MIGRATE_PARAM_COMPRESSION_MT_THREADS, PType::Int},
    {VIR_MIGRATE_PARAM_COMPRESSION_MT_DTHREADS, PType::Int},
    {VIR_MIGRATE_PARAM_COMPRESSION_XBZRLE_CACHE, PType::ULL},
    {VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL, PType::Int},
    {VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT, PType::Int},
    {VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS, PType::Int},
    {VIR_MIGRATE_PARAM_TLS_DESTINATION, PType::Str},
};

struct TypedParams {
  virTypedParameterPtr p = nullptr;
  int n = 0;
  int max = 0;
  ~TypedParams() {
    if (p) virTypedParamsFree(p, n);
  }
};

// Builds typed parameters on the JS thread (pure memory work, no I/O).
void BuildMigrateParams(Napi::Env env, Napi::Value v, TypedParams& tp) {
  if (v.IsUndefined() || v.IsNull()) return;
  if (!v.IsObject() || v.IsArray()) throw Napi::TypeError::New(env, "params must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  const double kMaxSafe = 9007199254740991.0;
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string key = keys.Get(i).ToString().Utf8Value();
    Napi::Value val = o.Get(key);
    if (val.IsUndefined()) continue;
    const PDef* def = nullptr;
    for (const PDef& d : kMigrateParams)
      if (key == d.name) def = &d;
    if (!def) throw Napi::TypeError::New(env, "unknown migration parameter '" + key + "'");
    int rc = 0;
    auto badType = [&](const char* want) {
      return Napi::TypeError::New(env, "migration parameter '" + key + "' must be " + want);
    };
    switch (def->type) {
      case PType::Str:
        if (!val.IsString()) throw badType("a string");
        rc = virTypedParamsAddString(&tp.p, &tp.n, &tp.max, def->name, val.As<Napi::String>().Utf8Value().c_str());
        break;
      case PType::StrMulti: {
        std::vector<std::string> items;
        if (val.IsString()) {
          items.push_back(val.As<Napi::String>().Utf8Value());
        } else if (val.IsArray()) {
          Napi::Array a = val.As<Napi::Array>();
          for (uint32_t j = 0; j < a.Length(); j++) {
            Napi::Value e = a.Get(j);
            if (!e.IsString()) throw badType("a string or an array of strings");
            items.push_back(e.As<Napi::String>().Utf8Value());
          }
        } else {
          throw badType("a string or an array of strings");
        }
        for (const auto& s : items) {
          rc = virTypedParamsAddString(&tp.p, &tp.n, &tp.max, def->name, s.c_str());
          if (rc < 0) break;
        }
        break;
      }
      case PType::Int:
      case PType::ULL: {
        if (!val.IsNumber()) throw badType("a number");
        double d = val.As<Napi::Number>().DoubleValue();
        double max = def->type == PType::Int ? static_cast<double>(INT_MAX) : kMaxSafe;
        if (!std::isfinite(d) || d < 0 || std::floor(d) != d || d > max) throw badType("a non-negative integer");
        if (def->type == PType::Int)
          rc = virTypedParamsAddInt(&tp.p, &tp.n, &tp.max, def->name, static_cast<int>(d));
        else
          rc = virTypedParamsAddULLong(&tp.p, &tp.n, &tp.max, def->name, static_cast<unsigned long long>(d));
        break;
      }
    }
    if (rc < 0) {
      LvError e;
      e.Capture("cannot build migration parameters");
      throw Napi::Error::New(env, e.message);
    }
  }
}
}  // namespace

Napi::Value NativeDomain::GetInfo(const Napi::CallbackInfo& info) {
  return WithDom<virDomainInfo>(
      info.Env(), ds_,
      [](virDomainPtr d, virDomainInfo& out, LvError& err) {
        if (virDomainGetInfo(d, &out) < 0) err.Capture("virDomainGetInfo failed");
      },
      [](Napi::Env env, virDomainInfo& i, LvError&) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("state", static_cast<double>(i.state));
        o.Set("maxMemKiB", static_cast<double>(i.maxMem));
        o.Set("memoryKiB", static_cast<double>(i.memory));
        o.Set("nrVirtCpu", static_cast<double>(i.nrVirtCpu));
        o.Set("cpuTimeNs", static_cast<double>(i.cpuTime));
        return o;
      });
}

Napi::Value NativeDomain::MemoryStats(const Napi::CallbackInfo& info) {
  // virDomainMemoryStats, keyed by the names virsh dommemstat prints. QEMU reports "rss" (the QEMU
  // process's resident set, KiB) even without a balloon device; the rest need a balloon driver.
  using Stats = std::vector<virDomainMemoryStatStruct>;
  return WithDom<Stats>(
      info.Env(), ds_,
      [](virDomainPtr d, Stats& out, LvError& err) {
        out.resize(VIR_DOMAIN_MEMORY_STAT_NR);
        int n = virDomainMemoryStats(d, out.data(), VIR_DOMAIN_MEMORY_STAT_NR, 0);
        if (n < 0) {
          err.Capture("virDomainMemoryStats failed");
          n = 0;
        }
        out.resize(static_cast<size_t>(n));
      },
      [](Napi::Env env, Stats& stats, LvError&) {
        static const char* const kNames[VIR_DOMAIN_MEMORY_STAT_NR] = {
            "swap_in", "swap_out", "major_fault", "minor_fault", "unused",          "available",      "actual",
            "rss",     "usable",   "last_update", "disk_caches", "hugetlb_pgalloc", "hugetlb_pgfail",
        };
        Napi::Object o = Napi::Object::New(env);
        for (const auto& s : stats)
          if (s.tag >= 0 && s.tag < VIR_DOMAIN_MEMORY_STAT_NR) o.Set(kNames[s.tag], static_cast<double>(s.val));
        return o;
      });
}

Napi::Value NativeDomain::GetState(const Napi::CallbackInfo& info) {
  return WithDom<std::pair<int, int>>(
      info.Env(), ds_,
      [](virDomainPtr d, std::pair<int, int>& out, LvError& err) {
        if (virDomainGetState(d, &out.first, &out.second, 0) < 0) err.Capture("virDomainGetState failed");
      },
      [](Napi::Env env, std::pair<int, int>& s, LvError&) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("state", s.first);
        o.Set("reason", s.second);
        return o;
      });
}

Napi::Value NativeDomain::GetXmlDesc(const Napi::CallbackInfo& info) {
  unsigned int flags = static_cast<unsigned int>(ArgUInt(info, 0, "flags", 0, UINT_MAX));
  return WithDom<std::string>(
      info.Env(), ds_,
      [flags](virDomainPtr d, std::string& out, LvError& err) {
        char* x = virDomainGetXMLDesc(d, flags);
        if (!x) {
          err.Capture("virDomainGetXMLDesc failed");
          return;
        }
        out = x;
        free(x);
      },
      [](Napi::Env env, std::string& s, LvError&) { return Napi::String::New(env, s); });
}

Napi::Value NativeDomain::Create(const Napi::CallbackInfo& info) {
  return Simple(info.Env(), ds_, [](virDomainPtr d) { return virDomainCreate(d); }, "virDomainCreate");
}

Napi::Value NativeDomain::Destroy(const Napi::CallbackInfo& info) {
  return Simple(info.Env(), ds_, [](virDomainPtr d) { return virDomainDestroy(d); }, "virDomainDestroy");
}

Napi::Value NativeDomain::Undefine(const Napi::CallbackInfo& info) {
  return Simple(info.Env(), ds_, [](virDomainPtr d) { return virDomainUndefine(d); }, "virDomainUndefine");
}

Napi::Value NativeDomain::MigrateToUri3(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dconnuri;
  if (info.Length() >= 1 && info[0].IsString())
    dconnuri = info[0].As<Napi::String>().Utf8Value();
  else if (!(info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()))
    throw Napi::TypeError::New(env, "dconnuri must be a string");
  auto tp = std::make_shared<TypedParams>();
  BuildMigrateParams(env, info.Length() >= 2 ? info[1] : env.Undefined(), *tp);
  unsigned int flags = static_cast<unsigned int>(ArgUInt(info, 2, "flags", 0, UINT_MAX));
  // Blocks for the whole migration: a dedicated thread, never a pool slot. It also gets a dedicated
  // connection: in the lab, calls sharing a connection with an in-flight migration RPC stalled for up to
  // 5 s (until the client's keepalive timer woke the RPC loop); on other connections they did not.
  std::string uri = ds_->cs->uri;
  std::string uuid = ds_->uuid;
  return WithDom<Nothing>(
      env, ds_,
      [uri, uuid, dconnuri, tp, flags](virDomainPtr, Nothing&, LvError& err) {
        virConnectPtr mc = virConnectOpenAuth(uri.empty() ? nullptr : uri.c_str(), virConnectAuthPtrDefault, 0);
        if (!mc) {
          err.Capture("cannot open a connection for the migration");
          return;
        }
        virDomainPtr md = virDomainLookupByUUIDString(mc, uuid.c_str());
        if (!md) {
          err.Capture("virDomainLookupByUUIDString failed");
        } else {
          // Empty dconnuri means NULL (required for non-peer-to-peer migration).
          if (virDomainMigrateToURI3(md, dconnuri.empty() ? nullptr : dconnuri.c_str(), tp->p,
                                     static_cast<unsigned int>(tp->n), flags) < 0)
            err.Capture("virDomainMigrateToURI3 failed");
          virDomainFree(md);  // after Capture: libvirt calls reset the thread's last error
        }
        virConnectClose(mc);
      },
      Undef, true);
}

Napi::Value NativeDomain::GetJobStats(const Napi::CallbackInfo& info) {
  unsigned int flags = static_cast<unsigned int>(ArgUInt(info, 0, "flags", 0, UINT_MAX));
  struct R {
    int type = 0;
    NumParams p;
  };
  return WithDom<R>(
      info.Env(), ds_,
      [flags](virDomainPtr d, R& out, LvError& err) {
        virTypedParameterPtr params = nullptr;
        int n = 0;
        if (virDomainGetJobStats(d, &out.type, &params, &n, flags) < 0) {
          err.Capture("virDomainGetJobStats failed");
          return;
        }
        FlattenParams(params, n, out.p);
        virTypedParamsFree(params, n);
      },
      [](Napi::Env env, R& r, LvError&) { return NumParamsToJs(env, r.type, r.p); });
}

Napi::Value NativeDomain::AbortJob(const Napi::CallbackInfo& info) {
  // flags: virDomainAbortJobFlagsValues (VIR_DOMAIN_ABORT_JOB_POSTCOPY pauses a post-copy migration
  // so that it can be resumed with VIR_MIGRATE_POSTCOPY_RESUME); 0 keeps the plain abort call.
  unsigned int flags = static_cast<unsigned int>(ArgUInt(info, 0, "flags", 0, UINT_MAX));
  if (flags == 0)
    return Simple(info.Env(), ds_, [](virDomainPtr d) { return virDomainAbortJob(d); }, "virDomainAbortJob");
  return Simple(
      info.Env(), ds_, [flags](virDomainPtr d) { return virDomainAbortJobFlags(d, flags); },
      "virDomainAbortJobFlags");
}

Napi::Value NativeDomain::MigrateSetMaxDowntime(const Napi::CallbackInfo& info) {
  unsigned long long ms = static_cast<unsigned long long>(ArgUInt(info, 0, "ms", -1, 9007199254740991.0));
  return Simple(
      info.Env(), ds_, [ms](virDomainPtr d) { return virDomainMigrateSetMaxDowntime(d, ms, 0); },
      "virDomainMigrateSetMaxDowntime");
}

Napi::Value NativeDomain::MigrateSetMaxSpeed(const Napi::CallbackInfo& info) {
  unsigned long mib = static_cast<unsigned long>(ArgUInt(info, 0, "mibPerSec", -1, 9007199254740991.0));
  return Simple(
      info.Env(), ds_, [mib](virDomainPtr d) { return virDomainMigrateSetMaxSpeed(d, mib, 0); },
      "virDomainMigrateSetMaxSpeed");
}

Napi::Value NativeDomain::MigrateStartPostCopy(const Napi::CallbackInfo& info) {
  return Simple(
      info.Env(), ds_, [](virDomainPtr d) { return virDomainMigrateStartPostCopy(d, 0); },
      "virDomainMigrateStartPostCopy");
}

Napi::Value NativeDomain::QemuMonitorCommand(const Napi::CallbackInfo& info) {
  std::string cmd = ArgString(info, 0, "command");
  bool hmp = false;
  if (info.Length() >= 2 && !info[1].IsUndefined()) {
    if (!info[1].IsBoolean()) throw Napi::TypeError::New(info.Env(), "hmp must be a boolean");
    hmp = info[1].As<Napi::Boolean>().Value();
  }
  unsigned int flags = hmp ? VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP : VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT;
  return WithDom<std::string>(
      info.Env(), ds_,
      [cmd, flags](virDomainPtr d, std::string& out, LvError& err) {
        char* result = nullptr;
        if (virDomainQemuMonitorCommand(d, cmd.c_str(), &result, flags) < 0) {
          err.Capture("virDomainQemuMonitorCommand failed");
          return;
        }
        if (result) {
          out = result;
          free(result);
        }
      },
      [](Napi::Env env, std::string& s, LvError&) { return Napi::String::New(env, s); });
}

}  // namespace vm
