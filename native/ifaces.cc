// interfaces(): every link with index, MAC, MTU, flags and addresses, from two
// netlink dumps (RTM_GETLINK, RTM_GETADDR). Synchronous: it takes tens of µs.
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "args.h"
#include "netlink.h"
#include "operations.h"

namespace {

struct Address {
  IpAddress address;
  uint32_t prefix;
};

struct Interface {
  std::string name;
  int index = 0;
  uint8_t mac[6] = {};
  uint32_t mtu = 0;
  unsigned flags = 0;
  std::vector<Address> addresses;
};

std::vector<Interface> ReadInterfaces() {
  const char* action = "listing interfaces";
  Netlink netlink;
  std::vector<Interface> links;
  std::map<int, size_t> byIndex;

  NetlinkRequest linkRequest(RTM_GETLINK, 0);
  linkRequest.Payload<ifinfomsg>()->ifi_family = AF_UNSPEC;
  netlink.Dump(linkRequest, action, [&](const nlmsghdr* message) {
    if (message->nlmsg_type != RTM_NEWLINK) return;
    auto* ifi = reinterpret_cast<const ifinfomsg*>(NLMSG_DATA(message));
    const rtattr* table[IFLA_MAX + 1];
    ParseAttributes(IFLA_RTA(ifi), static_cast<int>(IFLA_PAYLOAD(message)), table, IFLA_MAX);
    Interface link;
    link.index = ifi->ifi_index;
    link.flags = ifi->ifi_flags;
    if (table[IFLA_IFNAME]) link.name = static_cast<const char*>(AttributeData(table[IFLA_IFNAME]));
    if (table[IFLA_MTU]) std::memcpy(&link.mtu, AttributeData(table[IFLA_MTU]), 4);
    if (table[IFLA_ADDRESS] && AttributeLength(table[IFLA_ADDRESS]) == 6) {
      std::memcpy(link.mac, AttributeData(table[IFLA_ADDRESS]), 6);
    }
    byIndex[link.index] = links.size();
    links.push_back(std::move(link));
  });

  NetlinkRequest addressRequest(RTM_GETADDR, 0);
  addressRequest.Payload<ifaddrmsg>()->ifa_family = AF_UNSPEC;
  netlink.Dump(addressRequest, action, [&](const nlmsghdr* message) {
    if (message->nlmsg_type != RTM_NEWADDR) return;
    auto* ifa = reinterpret_cast<const ifaddrmsg*>(NLMSG_DATA(message));
    if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return;
    auto found = byIndex.find(static_cast<int>(ifa->ifa_index));
    if (found == byIndex.end()) return;
    const rtattr* table[IFA_MAX + 1];
    ParseAttributes(IFA_RTA(ifa), static_cast<int>(IFA_PAYLOAD(message)), table, IFA_MAX);
    // IFA_LOCAL is our address; IFA_ADDRESS is the peer on point-to-point links.
    const rtattr* local = table[IFA_LOCAL] ? table[IFA_LOCAL] : table[IFA_ADDRESS];
    if (local == nullptr) return;
    IpAddress address = IpFromBytes(ifa->ifa_family, AttributeData(local));
    links[found->second].addresses.push_back({address, ifa->ifa_prefixlen});
  });
  return links;
}

}  // namespace

// interfaces() -> InterfaceInfo[]
Napi::Value Interfaces(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Interface> links;
  try {
    links = ReadInterfaces();
  } catch (const SysError& error) {
    throw MakeError(env, error);
  }
  Napi::Array result = Napi::Array::New(env, links.size());
  for (size_t i = 0; i < links.size(); i++) {
    const Interface& link = links[i];
    Napi::Object object = Napi::Object::New(env);
    object.Set("name", link.name);
    object.Set("index", link.index);
    object.Set("mac", FormatMac(link.mac));
    object.Set("mtu", link.mtu);
    object.Set("up", (link.flags & IFF_UP) != 0);
    object.Set("running", (link.flags & IFF_RUNNING) != 0);
    Napi::Array addresses = Napi::Array::New(env, link.addresses.size());
    for (size_t j = 0; j < link.addresses.size(); j++) {
      Napi::Object address = Napi::Object::New(env);
      address.Set("family", link.addresses[j].address.family == AF_INET ? 4 : 6);
      address.Set("address", FormatIp(link.addresses[j].address));
      address.Set("prefix", link.addresses[j].prefix);
      addresses.Set(static_cast<uint32_t>(j), address);
    }
    object.Set("addresses", addresses);
    result.Set(static_cast<uint32_t>(i), object);
  }
  return result;
}

// interfaceIndex(name) -> number, 0 when there is no such interface.
Napi::Value InterfaceIndex(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "ifname");
  unsigned index = name.size() < IFNAMSIZ ? if_nametoindex(name.c_str()) : 0;
  return Napi::Number::New(info.Env(), index);
}
