// The kernel's neighbour table (ARP and NDP caches) for one interface.
#pragma once

#include <cstdint>
#include <vector>

#include "ip.h"

struct NeighbourEntry {
  IpAddress address;
  bool hasMac = false;
  uint8_t mac[6] = {};
  uint16_t state = 0;  // NUD_* bits
};

// RTM_GETNEIGH dump, IPv4 and IPv6, filtered to `ifindex`.
std::vector<NeighbourEntry> DumpNeighbours(int ifindex, const char* action);

// 'REACHABLE', 'STALE', ... for the NUD_* state bits.
const char* NeighbourStateName(uint16_t state);
