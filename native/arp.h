// ARP frames on Ethernet (RFC 826, RFC 5227 probes and announcements).
#pragma once

#include <cstddef>
#include <cstdint>

constexpr size_t kArpFrameSize = 42;  // 14 Ethernet + 28 ARP
constexpr uint16_t kArpRequest = 1;
constexpr uint16_t kArpReply = 2;

extern const uint8_t kBroadcastMac[6];
extern const uint8_t kZeroMac[6];

struct ArpFrame {
  uint8_t destination[6];  // Ethernet destination
  uint16_t operation;      // kArpRequest or kArpReply
  uint8_t senderMac[6];
  uint8_t senderIp[4];
  uint8_t targetMac[6];
  uint8_t targetIp[4];
};

// Writes kArpFrameSize bytes; the Ethernet source is the sender MAC.
void BuildArp(const ArpFrame& arp, uint8_t* frame);

// Parses an Ethernet/IPv4 ARP frame; false for anything else.
bool ParseArp(const uint8_t* frame, size_t length, ArpFrame* out);
