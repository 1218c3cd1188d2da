#include "ip.h"

#include <arpa/inet.h>

#include <cstdio>

bool ParseIp(const std::string& text, IpAddress* out) {
  if (inet_pton(AF_INET, text.c_str(), out->bytes) == 1) {
    out->family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), out->bytes) == 1) {
    out->family = AF_INET6;
    return true;
  }
  return false;
}

IpAddress IpFromBytes(int family, const void* bytes) {
  IpAddress address;
  address.family = family;
  std::memcpy(address.bytes, bytes, address.size());
  return address;
}

std::string FormatIp(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(address.family, address.bytes, text, sizeof text) == nullptr) return "";
  return text;
}

std::string FormatMac(const uint8_t* mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
                mac[2], mac[3], mac[4], mac[5]);
  return text;
}

bool ParseMac(const std::string& text, uint8_t* out) {
  unsigned value[6];
  char extra;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &value[0], &value[1], &value[2],
                  &value[3], &value[4], &value[5], &extra) != 6) {
    return false;
  }
  for (int i = 0; i < 6; i++) out[i] = static_cast<uint8_t>(value[i]);
  return true;
}
