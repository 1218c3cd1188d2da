#include "ndisc.h"

#include <net/ethernet.h>
#include <netinet/in.h>

#include <cstring>

const uint8_t kAllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
const uint8_t kAllNodesMac[6] = {0x33, 0x33, 0, 0, 0, 1};

namespace {

constexpr uint8_t kOptionSourceLinkAddress = 1;
constexpr uint8_t kOptionTargetLinkAddress = 2;

// ICMPv6 checksum over the pseudo-header (RFC 8200 section 8.1) and the message.
uint16_t Icmp6Checksum(const uint8_t* source, const uint8_t* destination, const uint8_t* icmp,
                       size_t length) {
  uint32_t sum = 0;
  auto add = [&sum](const uint8_t* bytes, size_t count) {
    for (size_t i = 0; i + 1 < count; i += 2) sum += static_cast<uint32_t>(bytes[i] << 8 | bytes[i + 1]);
    if (count % 2) sum += static_cast<uint32_t>(bytes[count - 1] << 8);
  };
  add(source, 16);
  add(destination, 16);
  sum += static_cast<uint32_t>(length);
  sum += IPPROTO_ICMPV6;
  add(icmp, length);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Ethernet + IPv6 headers; returns a pointer to the ICMPv6 payload.
uint8_t* WriteHeaders(uint8_t* frame, const uint8_t* ethDestination, const uint8_t* ourMac,
                      const uint8_t* source, const uint8_t* destination, size_t payloadLength) {
  std::memcpy(frame, ethDestination, 6);
  std::memcpy(frame + 6, ourMac, 6);
  frame[12] = ETHERTYPE_IPV6 >> 8;
  frame[13] = ETHERTYPE_IPV6 & 0xff;
  uint8_t* ip = frame + 14;
  std::memset(ip, 0, 40);
  ip[0] = 0x60;  // version 6
  ip[4] = static_cast<uint8_t>(payloadLength >> 8);
  ip[5] = static_cast<uint8_t>(payloadLength);
  ip[6] = IPPROTO_ICMPV6;
  ip[7] = 255;  // hop limit: receivers drop ND messages that crossed a router
  std::memcpy(ip + 8, source, 16);
  std::memcpy(ip + 24, destination, 16);
  return ip + 40;
}

void Finish(uint8_t* icmp, size_t length, const uint8_t* source, const uint8_t* destination) {
  uint16_t checksum = Icmp6Checksum(source, destination, icmp, length);
  icmp[2] = static_cast<uint8_t>(checksum >> 8);
  icmp[3] = static_cast<uint8_t>(checksum);
}

}  // namespace

size_t BuildAdvertisement(uint8_t* frame, const uint8_t* ethDestination, const uint8_t* ourMac,
                          const uint8_t* source, const uint8_t* destination,
                          const uint8_t* target) {
  constexpr size_t kLength = 32;  // 24 NA + 8 target link-layer option
  uint8_t* icmp = WriteHeaders(frame, ethDestination, ourMac, source, destination, kLength);
  std::memset(icmp, 0, kLength);
  icmp[0] = kNeighbourAdvertisement;
  icmp[4] = 0x20;  // Override: replace the cached link-layer address
  std::memcpy(icmp + 8, target, 16);
  icmp[24] = kOptionTargetLinkAddress;
  icmp[25] = 1;  // length in units of 8 bytes
  std::memcpy(icmp + 26, ourMac, 6);
  Finish(icmp, kLength, source, destination);
  return 14 + 40 + kLength;
}

size_t BuildDadSolicitation(uint8_t* frame, const uint8_t* ourMac, const uint8_t* target) {
  constexpr size_t kLength = 24;
  uint8_t destination[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0};
  std::memcpy(destination + 13, target + 13, 3);
  uint8_t ethDestination[6] = {0x33, 0x33, destination[12], destination[13], destination[14],
                               destination[15]};
  static const uint8_t kUnspecified[16] = {};
  uint8_t* icmp = WriteHeaders(frame, ethDestination, ourMac, kUnspecified, destination, kLength);
  std::memset(icmp, 0, kLength);
  icmp[0] = kNeighbourSolicitation;
  std::memcpy(icmp + 8, target, 16);
  Finish(icmp, kLength, kUnspecified, destination);
  return 14 + 40 + kLength;
}

bool ParseNdisc(const uint8_t* frame, size_t length, NdiscFrame* out) {
  if (length < 14 + 40 + 24) return false;
  if (frame[12] != (ETHERTYPE_IPV6 >> 8) || frame[13] != (ETHERTYPE_IPV6 & 0xff)) return false;
  const uint8_t* ip = frame + 14;
  if ((ip[0] >> 4) != 6 || ip[6] != IPPROTO_ICMPV6 || ip[7] != 255) return false;
  size_t payload = static_cast<size_t>(ip[4] << 8 | ip[5]);
  if (payload < 24 || 14 + 40 + payload > length) return false;
  const uint8_t* icmp = ip + 40;
  if (icmp[0] != kNeighbourSolicitation && icmp[0] != kNeighbourAdvertisement) return false;
  if (icmp[1] != 0) return false;
  out->type = icmp[0];
  std::memcpy(out->ethSource, frame + 6, 6);
  std::memcpy(out->source, ip + 8, 16);
  std::memcpy(out->target, icmp + 8, 16);
  std::memcpy(out->linkAddress, frame + 6, 6);
  uint8_t wanted = icmp[0] == kNeighbourAdvertisement ? kOptionTargetLinkAddress
                                                      : kOptionSourceLinkAddress;
  for (size_t offset = 24; offset + 8 <= payload;) {
    size_t optionLength = static_cast<size_t>(icmp[offset + 1]) * 8;
    if (optionLength == 0 || offset + optionLength > payload) break;
    if (icmp[offset] == wanted && optionLength >= 8) std::memcpy(out->linkAddress, icmp + offset + 2, 6);
    offset += optionLength;
  }
  return true;
}
