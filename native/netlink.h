// A netlink socket (NETLINK_ROUTE unless told otherwise, e.g. NETLINK_SOCK_DIAG):
// one request with its ACK, or one dump.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstdint>
#include <functional>

#include "errors.h"
#include "fd.h"

// Builds one netlink request in a fixed buffer: header, family header, attributes.
class NetlinkRequest {
 public:
  NetlinkRequest(uint16_t type, uint16_t flags);
  template <typename T>
  T* Payload() {
    header()->nlmsg_len = NLMSG_LENGTH(sizeof(T));
    return reinterpret_cast<T*>(NLMSG_DATA(header()));
  }
  void AddAttribute(uint16_t type, const void* data, size_t length);
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_); }

 private:
  alignas(nlmsghdr) char buffer_[512] = {};
};

class Netlink {
 public:
  // groups: RTMGRP_* multicast groups to join (0 for request/response use).
  explicit Netlink(uint32_t groups = 0, int protocol = NETLINK_ROUTE);
  int fd() const { return fd_.get(); }

  // Sends `request` asking for an ACK; returns 0 or the positive errno the
  // kernel answered, so callers decide which errors mean "already done".
  int Execute(NetlinkRequest& request, const char* action);

  // Sends a dump request and calls `each` for every message until NLMSG_DONE.
  void Dump(NetlinkRequest& request, const char* action,
            const std::function<void(const nlmsghdr*)>& each);

 private:
  void Send(NetlinkRequest& request, const char* action);
  Fd fd_;
  uint32_t sequence_ = 0;
};

// Fills table[type] with the attributes found (nullptr for absent ones).
void ParseAttributes(const rtattr* first, int length, const rtattr** table, int max);

inline const void* AttributeData(const rtattr* attribute) {
  return RTA_DATA(const_cast<rtattr*>(attribute));
}
inline size_t AttributeLength(const rtattr* attribute) { return RTA_PAYLOAD(attribute); }
