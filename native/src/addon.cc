// vmigrate_libvirt: a small N-API binding over libvirt's C API (see src/libvirt/binding.ts).
#include "objects.h"

namespace vm {

namespace {
Napi::Value Internals(const Napi::CallbackInfo& info) {
  // Diagnostics for tests: native threads used by the private pool, promises in flight.
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("poolThreads", static_cast<double>(PoolThreadCount()));
  o.Set("pending", static_cast<double>(GetEnvData(info.Env()).pending));
  return o;
}
}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitRuntime(env);
  EnvData& d = GetEnvData(env);
  d.connCtor = Napi::Persistent(NativeConnection::Define(env));
  d.domCtor = Napi::Persistent(NativeDomain::Define(env));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("internals", Napi::Function::New(env, Internals, "internals"));
  return exports;
}

}  // namespace vm

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return vm::Init(env, exports); }

NODE_API_MODULE(vmigrate_libvirt, InitAddon)
