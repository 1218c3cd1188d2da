// Module entry: the raw functions lib/net/addon.ts declares. Argument checks
// with good messages live in lib/net/index.ts; these are thin syscalls.
#include <napi.h>

#include "operations.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("interfaces", Napi::Function::New(env, Interfaces, "interfaces"));
  exports.Set("interfaceIndex", Napi::Function::New(env, InterfaceIndex, "interfaceIndex"));
  exports.Set("addAddress", Napi::Function::New(env, AddAddress, "addAddress"));
  exports.Set("removeAddress", Napi::Function::New(env, RemoveAddress, "removeAddress"));
  exports.Set("announce", Napi::Function::New(env, Announce, "announce"));
  exports.Set("arpAllHosts", Napi::Function::New(env, ArpAllHosts, "arpAllHosts"));
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("probeMany", Napi::Function::New(env, ProbeMany, "probeMany"));
  exports.Set("neighbours", Napi::Function::New(env, Neighbours, "neighbours"));
  exports.Set("tcpSockets", Napi::Function::New(env, TcpSockets, "tcpSockets"));
  exports.Set("destroyTcpSockets", Napi::Function::New(env, DestroyTcpSockets, "destroyTcpSockets"));
  InitSniffer(env, exports);
  InitWatcher(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mta_vip, Init)
