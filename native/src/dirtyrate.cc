// QEMU's dirty-rate calculation through libvirt: virDomainStartDirtyRateCalc starts a measurement
// over N seconds, and the domain stats group "dirtyrate" (VIR_DOMAIN_STATS_DIRTYRATE) reads it back.
#include <climits>

#include "objects.h"

namespace vm {

Napi::Value NativeDomain::StartDirtyRateCalc(const Napi::CallbackInfo& info) {
  // libvirt takes an int; QEMU accepts 1..60 s (checked in TypeScript too, with a clearer message).
  int seconds = static_cast<int>(ArgUInt(info, 0, "seconds", -1, 60));
  unsigned int flags = static_cast<unsigned int>(ArgUInt(info, 1, "flags", 0, UINT_MAX));
  return WithDom<Nothing>(
      info.Env(), ds_,
      [seconds, flags](virDomainPtr d, Nothing&, LvError& err) {
        if (virDomainStartDirtyRateCalc(d, seconds, flags) < 0) err.Capture("virDomainStartDirtyRateCalc failed");
      },
      [](Napi::Env e, Nothing&, LvError&) { return e.Undefined(); });
}

Napi::Value NativeDomain::GetDirtyRateStats(const Napi::CallbackInfo& info) {
  // Numbers only (dirtyrate.calc_status, .calc_start_time, .calc_period, .megabytes_per_second,
  // .vcpu.N.megabytes_per_second); the string dirtyrate.calc_mode is dropped by FlattenParams.
  return WithDom<NumParams>(
      info.Env(), ds_,
      [](virDomainPtr d, NumParams& out, LvError& err) {
        virDomainPtr doms[] = {d, nullptr};
        virDomainStatsRecordPtr* recs = nullptr;
        int n = virDomainListGetStats(doms, VIR_DOMAIN_STATS_DIRTYRATE, &recs, 0);
        if (n < 0) {
          err.Capture("virDomainListGetStats failed");
          return;
        }
        if (n > 0 && recs[0]) FlattenParams(recs[0]->params, recs[0]->nparams, out);
        virDomainStatsRecordListFree(recs);
      },
      [](Napi::Env env, NumParams& p, LvError&) {
        Napi::Object o = Napi::Object::New(env);
        for (const auto& kv : p) o.Set(kv.first, Napi::Number::New(env, kv.second));
        return o;
      });
}

}  // namespace vm
