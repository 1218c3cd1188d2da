// probe: is anybody else using this address on the link?
// IPv4: RFC 5227 ARP probe (sender IP 0.0.0.0); a reply, an announcement or
// another host's probe for the address from a foreign MAC is a conflict.
// IPv6: duplicate address detection (NS from ::); an NA for the target, or
// another host's DAD NS for it, from a foreign MAC is a conflict.
#include <linux/if_ether.h>

#include <cstring>
#include <string>

#include "args.h"
#include "arp.h"
#include "link.h"
#include "ndisc.h"
#include "operations.h"
#include "packet_socket.h"
#include "worker.h"

namespace {

class ProbeWorker : public PromiseWorker {
 public:
  ProbeWorker(Napi::Env env, std::string ifname, IpAddress address, uint32_t timeoutMs)
      : PromiseWorker(env, "mta_vip.probe"),
        ifname_(std::move(ifname)),
        address_(address),
        timeoutMs_(timeoutMs) {}

 protected:
  void Run() override {
    const char* action = "probing an address";
    LinkInfo link = ResolveLink(ifname_, action);
    bool v4 = address_.family == AF_INET;
    // Open (and so start capturing) before sending, or a fast answer is missed.
    PacketSocket socket(link.index, v4 ? ETH_P_ARP : ETH_P_IPV6, action);

    uint8_t frame[kNdiscFrameMax > kArpFrameSize ? kNdiscFrameMax : kArpFrameSize];
    size_t length;
    if (v4) {
      ArpFrame arp = {};
      std::memcpy(arp.destination, kBroadcastMac, 6);
      arp.operation = kArpRequest;
      std::memcpy(arp.senderMac, link.mac, 6);
      std::memcpy(arp.targetIp, address_.bytes, 4);  // sender IP stays 0.0.0.0
      BuildArp(arp, frame);
      length = kArpFrameSize;
    } else {
      length = BuildDadSolicitation(frame, link.mac, address_.bytes);
    }
    socket.Send(frame, length, action);

    int64_t deadline = NowMs() + timeoutMs_;
    uint8_t buffer[2048];
    for (;;) {
      int64_t left = deadline - NowMs();
      if (left < 0) return;
      ssize_t received = socket.Receive(buffer, sizeof buffer, static_cast<int>(left), action);
      if (received < 0) return;  // timed out: nobody answered
      if (v4 ? Conflict4(link, buffer, static_cast<size_t>(received))
             : Conflict6(link, buffer, static_cast<size_t>(received))) {
        return;
      }
    }
  }

  Napi::Value Result(Napi::Env env) override {
    if (!found_) return env.Null();
    return Napi::String::New(env, FormatMac(mac_));
  }

 private:
  bool Conflict4(const LinkInfo& link, const uint8_t* buffer, size_t length) {
    ArpFrame arp;
    if (!ParseArp(buffer, length, &arp)) return false;
    if (std::memcmp(arp.senderMac, link.mac, 6) == 0) return false;
    static const uint8_t kAny[4] = {};
    bool claims = std::memcmp(arp.senderIp, address_.bytes, 4) == 0;
    bool probes = std::memcmp(arp.senderIp, kAny, 4) == 0 &&
                  std::memcmp(arp.targetIp, address_.bytes, 4) == 0;
    if (!claims && !probes) return false;
    return Found(arp.senderMac);
  }

  bool Conflict6(const LinkInfo& link, const uint8_t* buffer, size_t length) {
    NdiscFrame nd;
    if (!ParseNdisc(buffer, length, &nd)) return false;
    if (std::memcmp(nd.target, address_.bytes, 16) != 0) return false;
    if (std::memcmp(nd.ethSource, link.mac, 6) == 0) return false;
    static const uint8_t kUnspecified[16] = {};
    if (nd.type == kNeighbourSolicitation && std::memcmp(nd.source, kUnspecified, 16) != 0) {
      return false;  // an ordinary resolution request, not a competing DAD
    }
    return Found(nd.type == kNeighbourAdvertisement ? nd.linkAddress : nd.ethSource);
  }

  bool Found(const uint8_t* mac) {
    found_ = true;
    std::memcpy(mac_, mac, 6);
    return true;
  }

  std::string ifname_;
  IpAddress address_;
  uint32_t timeoutMs_;
  bool found_ = false;
  uint8_t mac_[6] = {};
};

}  // namespace

// probe(ifname, address, timeoutMs) -> Promise<string | null>
Napi::Value Probe(const Napi::CallbackInfo& info) {
  std::string ifname = StringArg(info, 0, "ifname");
  IpAddress address = AddressArg(info, 1, "address");
  uint32_t timeoutMs = UintArg(info, 2, "timeoutMs");
  return (new ProbeWorker(info.Env(), ifname, address, timeoutMs))->Start();
}
