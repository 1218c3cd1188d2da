// An AF_PACKET socket bound to one interface, sending and receiving whole
// Ethernet frames. Opening one needs CAP_NET_RAW.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "fd.h"

class PacketSocket {
 public:
  // protocol: ETH_P_ARP, ETH_P_IPV6 or ETH_P_ALL (host byte order).
  PacketSocket(int ifindex, uint16_t protocol, const char* action);
  int fd() const { return fd_.get(); }
  // Hands the socket over (to a reader thread); this object is then empty.
  Fd TakeFd() { return std::move(fd_); }

  void Send(const uint8_t* frame, size_t length, const char* action);

  // Waits up to timeoutMs for a frame; returns its length, or -1 on timeout.
  // Frames this host sent itself are skipped.
  ssize_t Receive(uint8_t* buffer, size_t size, int timeoutMs, const char* action);

 private:
  Fd fd_;
};

// Milliseconds on the monotonic clock.
int64_t NowMs();
