// AF_PACKET sockets, whole Ethernet frames. Opening one needs CAP_NET_RAW.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "fd.h"

// Sends one frame on interface `ifindex` through a process-wide send-only
// socket (protocol 0: it receives nothing). Reusing it matters: creating and
// closing a packet socket costs an RCU grace period, ~15 ms, per call.
void SendFrame(int ifindex, const uint8_t* frame, size_t length, const char* action);

// A receiving socket bound to one interface and protocol.
class PacketSocket {
 public:
  // protocol: ETH_P_ARP, ETH_P_IPV6 or ETH_P_ALL (host byte order). The
  // optional filter is attached before the socket starts receiving.
  PacketSocket(int ifindex, uint16_t protocol, const char* action,
               const sock_fprog* filter = nullptr);
  ~PacketSocket();  // closes in the background (see close_later.h)
  PacketSocket(const PacketSocket&) = delete;
  PacketSocket& operator=(const PacketSocket&) = delete;

  int fd() const { return fd_.get(); }
  // Hands the socket over (to a reader thread); this object is then empty.
  Fd TakeFd() { return std::move(fd_); }

  // Sends on the bound interface.
  void Send(const uint8_t* frame, size_t length, const char* action);

  // Waits up to timeoutMs for a frame; returns its length, or -1 on timeout.
  // Frames this host sent itself are skipped.
  ssize_t Receive(uint8_t* buffer, size_t size, int timeoutMs, const char* action);

 private:
  Fd fd_;
};

// Milliseconds on the monotonic clock.
int64_t NowMs();
