// announce: gratuitous ARP for IPv4 VIPs and unsolicited neighbour
// advertisements for IPv6 VIPs, so hosts on the link that cached the previous
// holder's MAC switch to ours. One socket, all addresses per round, `count`
// rounds `intervalMs` apart (a single frame can be lost).
#include <time.h>

#include <string>
#include <vector>

#include "args.h"
#include "arp.h"
#include "link.h"
#include "ndisc.h"
#include "operations.h"
#include "packet_socket.h"
#include "worker.h"

namespace {

enum class ArpForm { kRequest = 0, kReply = 1, kBoth = 2 };

void SleepMs(uint32_t ms) {
  timespec delay = {static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
  while (nanosleep(&delay, &delay) != 0) {
  }
}

class AnnounceWorker : public PromiseWorker {
 public:
  AnnounceWorker(Napi::Env env, std::string ifname, std::vector<IpAddress> addresses,
                 uint32_t count, uint32_t intervalMs, ArpForm form)
      : PromiseWorker(env, "mta_vip.announce"),
        ifname_(std::move(ifname)),
        addresses_(std::move(addresses)),
        count_(count),
        intervalMs_(intervalMs),
        form_(form) {}

 protected:
  void Run() override {
    const char* action = "sending gratuitous ARP/NA";
    LinkInfo link = ResolveLink(ifname_, action);

    // Build every frame once; rounds resend the same bytes.
    std::vector<std::vector<uint8_t>> frames;
    for (const IpAddress& address : addresses_) {
      if (address.family == AF_INET) {
        if (form_ != ArpForm::kReply) frames.push_back(Arp(link, address, kArpRequest));
        if (form_ != ArpForm::kRequest) frames.push_back(Arp(link, address, kArpReply));
      } else {
        std::vector<uint8_t> frame(kNdiscFrameMax);
        // Source = the VIP itself: an address of this interface, as RFC 4861 asks.
        frame.resize(BuildAdvertisement(frame.data(), kAllNodesMac, link.mac, address.bytes,
                                        kAllNodes, address.bytes));
        frames.push_back(std::move(frame));
      }
    }

    for (uint32_t round = 0; round < count_; round++) {
      if (round > 0 && intervalMs_ > 0) SleepMs(intervalMs_);
      for (const auto& frame : frames) {
        SendFrame(link.index, frame.data(), frame.size(), action);
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
  static std::vector<uint8_t> Arp(const LinkInfo& link, const IpAddress& address,
                                  uint16_t operation) {
    // Request form (RFC 5227 announcement): target MAC zero, sender IP = target IP.
    // Reply form: an unrequested reply with target MAC = ours, broadcast.
    ArpFrame arp = {};
    std::memcpy(arp.destination, kBroadcastMac, 6);
    arp.operation = operation;
    std::memcpy(arp.senderMac, link.mac, 6);
    std::memcpy(arp.senderIp, address.bytes, 4);
    std::memcpy(arp.targetMac, operation == kArpReply ? link.mac : kZeroMac, 6);
    std::memcpy(arp.targetIp, address.bytes, 4);
    std::vector<uint8_t> frame(kArpFrameSize);
    BuildArp(arp, frame.data());
    return frame;
  }

  std::string ifname_;
  std::vector<IpAddress> addresses_;
  uint32_t count_;
  uint32_t intervalMs_;
  ArpForm form_;
  uint64_t sent_ = 0;
};

}  // namespace

// announce(ifname, addresses, count, intervalMs, form 0|1|2) -> Promise<{sent}>
Napi::Value Announce(const Napi::CallbackInfo& info) {
  std::string ifname = StringArg(info, 0, "ifname");
  std::vector<IpAddress> addresses = AddressListArg(info, 1, "addresses");
  uint32_t count = UintArg(info, 2, "count");
  uint32_t intervalMs = UintArg(info, 3, "intervalMs");
  uint32_t form = UintArg(info, 4, "form");
  if (form > 2) throw Napi::RangeError::New(info.Env(), "form must be 0, 1 or 2");
  return (new AnnounceWorker(info.Env(), ifname, std::move(addresses), count, intervalMs,
                             static_cast<ArpForm>(form)))
      ->Start();
}
