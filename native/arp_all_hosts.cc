// arpAllHosts: a unicast ARP reply (IPv4) or neighbour advertisement (IPv6)
// claiming `address` to every neighbour the kernel knows on the link. Reaches
// hosts and switches that ignore broadcast gratuitous ARP. `extra` hosts
// (learned from peers: hosts that only talked to the previous holder) get the
// same frame; each address+MAC pair is sent to once.
#include <linux/neighbour.h>

#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "arp.h"
#include "link.h"
#include "ndisc.h"
#include "neigh.h"
#include "operations.h"
#include "packet_socket.h"
#include "worker.h"

namespace {

bool Usable(const NeighbourEntry& entry) {
  if (!entry.hasMac) return false;
  if (entry.state & (NUD_NOARP | NUD_FAILED | NUD_INCOMPLETE)) return false;
  if (entry.address.family == AF_INET6 && entry.address.bytes[0] == 0xff) return false;  // multicast
  return true;
}

class ArpAllHostsWorker : public PromiseWorker {
 public:
  ArpAllHostsWorker(Napi::Env env, std::string ifname, IpAddress address,
                    std::vector<NeighbourEntry> extra)
      : PromiseWorker(env, "mta_vip.arpAllHosts"),
        ifname_(std::move(ifname)),
        address_(address),
        extra_(std::move(extra)) {}

 protected:
  void Run() override {
    const char* action = "sending ARP/NA to neighbours";
    LinkInfo link = ResolveLink(ifname_, action);
    std::vector<NeighbourEntry> neighbours = DumpNeighbours(link.index, action);
    neighbours.insert(neighbours.end(), extra_.begin(), extra_.end());
    std::set<std::string> done;  // address bytes + MAC
    for (const NeighbourEntry& neighbour : neighbours) {
      if (!Usable(neighbour) || neighbour.address.family != address_.family) continue;
      if (neighbour.address == address_) continue;
      if (!done.insert(neighbour.address.Key() + std::string(reinterpret_cast<const char*>(neighbour.mac), 6)).second) continue;
      uint8_t frame[kNdiscFrameMax > kArpFrameSize ? kNdiscFrameMax : kArpFrameSize];
      if (address_.family == AF_INET) {
        // Two replies, unicast to the neighbour. RFC 826 form (target = the
        // neighbour): what hosts that ignore gratuitous ARP accept. Gratuitous
        // form (target IP = the VIP, target MAC = ours): Linux applies it at
        // once, while it ignores the first form within `locktime` (1 s) of its
        // last update of the entry, which is exactly the moment of a failover.
        ArpFrame arp = {};
        std::memcpy(arp.destination, neighbour.mac, 6);
        arp.operation = kArpReply;
        std::memcpy(arp.senderMac, link.mac, 6);
        std::memcpy(arp.senderIp, address_.bytes, 4);
        std::memcpy(arp.targetMac, neighbour.mac, 6);
        std::memcpy(arp.targetIp, neighbour.address.bytes, 4);
        BuildArp(arp, frame);
        SendFrame(link.index, frame, kArpFrameSize, action);
        std::memcpy(arp.targetMac, link.mac, 6);
        std::memcpy(arp.targetIp, address_.bytes, 4);
        BuildArp(arp, frame);
        SendFrame(link.index, frame, kArpFrameSize, action);
        sent_ += 2;
      } else {
        size_t length = BuildAdvertisement(frame, neighbour.mac, link.mac, address_.bytes,
                                           neighbour.address.bytes, address_.bytes);
        SendFrame(link.index, frame, length, action);
        sent_++;
      }
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("sent", static_cast<double>(sent_));
    return result;
  }

 private:
  std::string ifname_;
  IpAddress address_;
  std::vector<NeighbourEntry> extra_;
  uint64_t sent_ = 0;
};

}  // namespace

// arpAllHosts(ifname, address, extraAddresses, extraMacs) -> Promise<{sent}>
Napi::Value ArpAllHosts(const Napi::CallbackInfo& info) {
  std::string ifname = StringArg(info, 0, "ifname");
  IpAddress address = AddressArg(info, 1, "address");
  std::vector<IpAddress> extraAddresses = AddressListArg(info, 2, "extraAddresses");
  if (!info[3].IsArray()) throw Napi::TypeError::New(info.Env(), "extraMacs must be an array");
  Napi::Array macs = info[3].As<Napi::Array>();
  if (macs.Length() != extraAddresses.size()) {
    throw Napi::RangeError::New(info.Env(), "extraMacs must be as long as extraAddresses");
  }
  std::vector<NeighbourEntry> extra(extraAddresses.size());
  for (uint32_t i = 0; i < macs.Length(); i++) {
    Napi::Value mac = macs.Get(i);
    if (!mac.IsString() || !ParseMac(mac.As<Napi::String>().Utf8Value(), extra[i].mac)) {
      throw Napi::TypeError::New(info.Env(), "extraMacs must hold MACs like aa:bb:cc:dd:ee:ff");
    }
    extra[i].address = extraAddresses[i];
    extra[i].hasMac = true;
    extra[i].state = NUD_STALE;
  }
  return (new ArpAllHostsWorker(info.Env(), ifname, address, std::move(extra)))->Start();
}
