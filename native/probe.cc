// probe / probeMany: is anybody else using these addresses on the link?
// IPv4: RFC 5227 ARP probe (sender IP 0.0.0.0); a reply, an announcement or
// another host's probe for the address from a foreign MAC is a conflict.
// IPv6: duplicate address detection (NS from ::); an NA for the target, or
// another host's DAD NS for it, from a foreign MAC is a conflict.
//
// One worker probes a whole batch: one receiving socket opened first, every
// probe sent, then a single wait of timeoutMs for the answers. A node taking
// over hundreds of VIPs would otherwise spend one worker thread and one
// timeout per address. probe() is the batch of one.
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "args.h"
#include "arp.h"
#include "link.h"
#include "ndisc.h"
#include "operations.h"
#include "packet_socket.h"
#include "worker.h"

namespace {

// Kernel-side filter for the receiving socket: the frames this host sends
// (every probe of the batch, looped back to ETH_P_ALL sockets) would
// otherwise fill the receive buffer before the answers arrive; of the rest,
// only ARP and ICMPv6 neighbour solicitations/advertisements get through.
const sock_filter kFilterCode[] = {
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 8, 0),  // ours -> drop
    BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                      // ethertype
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_ARP, 7, 0),        // ARP -> accept
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IPV6, 0, 5),       // not IPv6 -> drop
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 6),                  // next header
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_ICMPV6, 0, 3),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 40),                 // ICMPv6 type
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, kNeighbourSolicitation, 0, 1),  // 135 or 136
    BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, kNeighbourAdvertisement, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0),       // drop
    BPF_STMT(BPF_RET | BPF_K, 0xffff),  // accept
};

// Sending 1,000 probes takes a few ms; answers arriving meanwhile are read
// every this many frames, so a burst of them cannot overflow the socket.
// (Measured: reading only after the last send lost 744 of 1,000 answers.)
constexpr size_t kDrainEvery = 64;

// What JS gets back: probe() one MAC or null, probeMany() one per address.
enum class Reply { kOne, kList };

class ProbeWorker : public PromiseWorker {
 public:
  ProbeWorker(Napi::Env env, std::string ifname, std::vector<IpAddress> addresses,
              uint32_t timeoutMs, Reply reply)
      : PromiseWorker(env, reply == Reply::kOne ? "mta_vip.probe" : "mta_vip.probeMany"),
        ifname_(std::move(ifname)),
        timeoutMs_(timeoutMs),
        reply_(reply) {
    // Two spellings of one address ('2001:db8::1', '2001:DB8::1') share a
    // target: probed once, both get its answer.
    for (const IpAddress& address : addresses) {
      auto inserted = targetOf_.emplace(address.Key(), targets_.size());
      if (inserted.second) targets_.push_back(Target{address});
      slots_.push_back(inserted.first->second);
    }
    unanswered_ = targets_.size();
  }

 protected:
  void Run() override {
    const char* action = reply_ == Reply::kOne ? "probing an address" : "probing addresses";
    link_ = ResolveLink(ifname_, action);
    // Open (and so start capturing) before sending, or a fast answer is missed.
    sock_fprog filter = {static_cast<unsigned short>(sizeof kFilterCode / sizeof kFilterCode[0]),
                         const_cast<sock_filter*>(kFilterCode)};
    PacketSocket socket(link_.index, ETH_P_ALL, action, &filter);
    // More room for answers between reads (the kernel caps it at rmem_max; a
    // smaller buffer is still correct, only with less margin).
    int receiveBuffer = 1 << 20;
    setsockopt(socket.fd(), SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof receiveBuffer);

    uint8_t frame[kNdiscFrameMax > kArpFrameSize ? kNdiscFrameMax : kArpFrameSize];
    for (size_t i = 0; i < targets_.size(); i++) {
      size_t length = BuildProbe(targets_[i].address, frame);
      SendFrame(link_.index, frame, length, action);
      if ((i + 1) % kDrainEvery == 0) ReceiveUntil(socket, NowMs(), action);
    }
    ReceiveUntil(socket, NowMs() + timeoutMs_, action);
  }

  Napi::Value Result(Napi::Env env) override {
    if (reply_ == Reply::kOne) return Mac(env, targets_[slots_[0]]);
    Napi::Array list = Napi::Array::New(env, slots_.size());
    for (uint32_t i = 0; i < slots_.size(); i++) list.Set(i, Mac(env, targets_[slots_[i]]));
    return list;
  }

 private:
  struct Target {
    IpAddress address;
    bool found = false;
    uint8_t mac[6] = {};
  };

  size_t BuildProbe(const IpAddress& address, uint8_t* frame) const {
    if (address.family == AF_INET6) return BuildDadSolicitation(frame, link_.mac, address.bytes);
    ArpFrame arp = {};
    std::memcpy(arp.destination, kBroadcastMac, 6);
    arp.operation = kArpRequest;
    std::memcpy(arp.senderMac, link_.mac, 6);
    std::memcpy(arp.targetIp, address.bytes, 4);  // sender IP stays 0.0.0.0
    BuildArp(arp, frame);
    return kArpFrameSize;
  }

  // Reads answers until `deadline` (a deadline already past: only what is
  // queued now), or until every target has one.
  void ReceiveUntil(PacketSocket& socket, int64_t deadline, const char* action) {
    uint8_t buffer[2048];
    while (unanswered_ > 0) {
      int64_t left = deadline - NowMs();
      ssize_t received = socket.Receive(buffer, sizeof buffer, left > 0 ? static_cast<int>(left) : 0,
                                        action);
      if (received < 0) return;  // timed out: nobody else answered
      Match(buffer, static_cast<size_t>(received));
    }
  }

  void Match(const uint8_t* buffer, size_t length) {
    ArpFrame arp;
    if (ParseArp(buffer, length, &arp)) {
      if (std::memcmp(arp.senderMac, link_.mac, 6) == 0) return;
      // A host claiming the address (reply or announcement) ...
      if (Found(IpFromBytes(AF_INET, arp.senderIp), arp.senderMac)) return;
      // ... or probing for it at the same time as we do.
      static const uint8_t kAny[4] = {};
      if (std::memcmp(arp.senderIp, kAny, 4) == 0) Found(IpFromBytes(AF_INET, arp.targetIp), arp.senderMac);
      return;
    }
    NdiscFrame nd;
    if (!ParseNdisc(buffer, length, &nd)) return;
    if (std::memcmp(nd.ethSource, link_.mac, 6) == 0) return;
    static const uint8_t kUnspecified[16] = {};
    if (nd.type == kNeighbourSolicitation && std::memcmp(nd.source, kUnspecified, 16) != 0) {
      return;  // an ordinary resolution request, not a competing DAD
    }
    Found(IpFromBytes(AF_INET6, nd.target),
          nd.type == kNeighbourAdvertisement ? nd.linkAddress : nd.ethSource);
  }

  // Records the first answer for `address`; false when it is not one of ours.
  bool Found(const IpAddress& address, const uint8_t* mac) {
    auto it = targetOf_.find(address.Key());
    if (it == targetOf_.end()) return false;  // keys differ in length by family
    Target& target = targets_[it->second];
    if (!target.found) {
      target.found = true;
      std::memcpy(target.mac, mac, 6);
      unanswered_--;
    }
    return true;
  }

  static Napi::Value Mac(Napi::Env env, const Target& target) {
    if (!target.found) return env.Null();
    return Napi::String::New(env, FormatMac(target.mac));
  }

  std::string ifname_;
  uint32_t timeoutMs_;
  Reply reply_;
  LinkInfo link_;
  std::vector<Target> targets_;                        // distinct addresses
  std::unordered_map<std::string, size_t> targetOf_;   // IpAddress::Key() -> targets_ index
  std::vector<size_t> slots_;                          // per argument: its targets_ index
  size_t unanswered_ = 0;
};

}  // namespace

// probe(ifname, address, timeoutMs) -> Promise<string | null>
Napi::Value Probe(const Napi::CallbackInfo& info) {
  std::string ifname = StringArg(info, 0, "ifname");
  std::vector<IpAddress> addresses{AddressArg(info, 1, "address")};
  uint32_t timeoutMs = UintArg(info, 2, "timeoutMs");
  return (new ProbeWorker(info.Env(), ifname, std::move(addresses), timeoutMs, Reply::kOne))->Start();
}

// probeMany(ifname, addresses, timeoutMs) -> Promise<Array<string | null>>, in
// the order of `addresses`.
Napi::Value ProbeMany(const Napi::CallbackInfo& info) {
  std::string ifname = StringArg(info, 0, "ifname");
  std::vector<IpAddress> addresses = AddressListArg(info, 1, "addresses");
  uint32_t timeoutMs = UintArg(info, 2, "timeoutMs");
  return (new ProbeWorker(info.Env(), ifname, std::move(addresses), timeoutMs, Reply::kList))->Start();
}
