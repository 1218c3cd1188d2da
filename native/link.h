// What the packet code needs to know about an interface: index and MAC.
#pragma once

#include <cstdint>
#include <string>

struct LinkInfo {
  int index = 0;
  uint8_t mac[6] = {};
};

// Throws SysError ENODEV when the interface does not exist.
LinkInfo ResolveLink(const std::string& ifname, const char* action);
