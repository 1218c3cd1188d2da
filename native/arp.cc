#include "arp.h"

#include <arpa/inet.h>
#include <net/ethernet.h>

#include <cstring>

const uint8_t kBroadcastMac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
const uint8_t kZeroMac[6] = {0, 0, 0, 0, 0, 0};

namespace {

void Put16(uint8_t* at, uint16_t value) {
  at[0] = static_cast<uint8_t>(value >> 8);
  at[1] = static_cast<uint8_t>(value);
}

uint16_t Get16(const uint8_t* at) { return static_cast<uint16_t>(at[0] << 8 | at[1]); }

}  // namespace

void BuildArp(const ArpFrame& arp, uint8_t* frame) {
  std::memcpy(frame, arp.destination, 6);
  std::memcpy(frame + 6, arp.senderMac, 6);
  Put16(frame + 12, ETHERTYPE_ARP);
  uint8_t* body = frame + 14;
  Put16(body, 1);                 // hardware: Ethernet
  Put16(body + 2, ETHERTYPE_IP);  // protocol: IPv4
  body[4] = 6;
  body[5] = 4;
  Put16(body + 6, arp.operation);
  std::memcpy(body + 8, arp.senderMac, 6);
  std::memcpy(body + 14, arp.senderIp, 4);
  std::memcpy(body + 18, arp.targetMac, 6);
  std::memcpy(body + 24, arp.targetIp, 4);
}

bool ParseArp(const uint8_t* frame, size_t length, ArpFrame* out) {
  if (length < kArpFrameSize || Get16(frame + 12) != ETHERTYPE_ARP) return false;
  const uint8_t* body = frame + 14;
  if (Get16(body) != 1 || Get16(body + 2) != ETHERTYPE_IP || body[4] != 6 || body[5] != 4) {
    return false;
  }
  std::memcpy(out->destination, frame, 6);
  out->operation = Get16(body + 6);
  std::memcpy(out->senderMac, body + 8, 6);
  std::memcpy(out->senderIp, body + 14, 4);
  std::memcpy(out->targetMac, body + 18, 6);
  std::memcpy(out->targetIp, body + 24, 4);
  return out->operation == kArpRequest || out->operation == kArpReply;
}
