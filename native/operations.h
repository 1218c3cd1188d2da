// The functions addon.cc exports, one file each.
#pragma once

#include <napi.h>

Napi::Value AddAddress(const Napi::CallbackInfo& info);     // netlink_addr.cc
Napi::Value RemoveAddress(const Napi::CallbackInfo& info);  // netlink_addr.cc
Napi::Value Announce(const Napi::CallbackInfo& info);       // announce.cc
Napi::Value ArpAllHosts(const Napi::CallbackInfo& info);    // arp_all_hosts.cc
Napi::Value Probe(const Napi::CallbackInfo& info);          // probe.cc
Napi::Value ProbeMany(const Napi::CallbackInfo& info);      // probe.cc
Napi::Value Neighbours(const Napi::CallbackInfo& info);     // neigh.cc
Napi::Value Interfaces(const Napi::CallbackInfo& info);     // ifaces.cc
Napi::Value TcpSockets(const Napi::CallbackInfo& info);     // tcp_sockets.cc
Napi::Value DestroyTcpSockets(const Napi::CallbackInfo& info);  // tcp_sockets.cc
Napi::Value InterfaceIndex(const Napi::CallbackInfo& info); // ifaces.cc
void InitSniffer(Napi::Env env, Napi::Object exports);      // sniff.cc
void InitWatcher(Napi::Env env, Napi::Object exports);      // watch.cc
