// IPv6 neighbour discovery frames (RFC 4861) built by hand on AF_PACKET, so
// we choose the source address and the hop limit (255, which receivers require).
#pragma once

#include <cstddef>
#include <cstdint>

constexpr uint8_t kNeighbourSolicitation = 135;
constexpr uint8_t kNeighbourAdvertisement = 136;
constexpr size_t kNdiscFrameMax = 86;  // 14 Ethernet + 40 IPv6 + 24 NA + 8 option

// Unsolicited (or unicast) advertisement: Override set, Solicited clear,
// Target Link-Layer Address option = ourMac. Returns the frame length.
size_t BuildAdvertisement(uint8_t* frame, const uint8_t* ethDestination, const uint8_t* ourMac,
                          const uint8_t* source, const uint8_t* destination,
                          const uint8_t* target);

// Duplicate address detection probe: NS from :: to the target's
// solicited-node multicast group, without a source link-layer option.
size_t BuildDadSolicitation(uint8_t* frame, const uint8_t* ourMac, const uint8_t* target);

// The all-nodes group ff02::1 and its Ethernet address 33:33:00:00:00:01.
extern const uint8_t kAllNodes[16];
extern const uint8_t kAllNodesMac[6];

struct NdiscFrame {
  uint8_t type;           // kNeighbourSolicitation or kNeighbourAdvertisement
  uint8_t ethSource[6];
  uint8_t source[16];     // IPv6 source
  uint8_t target[16];
  uint8_t linkAddress[6]; // from the link-layer option, else the Ethernet source
};

// Parses an NS or NA (no extension headers, hop limit 255); false otherwise.
bool ParseNdisc(const uint8_t* frame, size_t length, NdiscFrame* out);
