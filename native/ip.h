// An IPv4 or IPv6 address in network byte order, and MAC formatting.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <string>

struct IpAddress {
  int family = 0;          // AF_INET or AF_INET6
  uint8_t bytes[16] = {};  // first 4 used for AF_INET

  size_t size() const { return family == AF_INET ? 4 : 16; }
  bool operator==(const IpAddress& other) const {
    return family == other.family && std::memcmp(bytes, other.bytes, size()) == 0;
  }
  // Raw bytes as a key for sets.
  std::string Key() const { return std::string(reinterpret_cast<const char*>(bytes), size()); }
};

using Mac = uint8_t[6];

bool ParseIp(const std::string& text, IpAddress* out);
IpAddress IpFromBytes(int family, const void* bytes);
std::string FormatIp(const IpAddress& address);
std::string FormatMac(const uint8_t* mac);  // "aa:bb:cc:dd:ee:ff"
bool ParseMac(const std::string& text, uint8_t* out);  // "aa:bb:cc:dd:ee:ff", any case
