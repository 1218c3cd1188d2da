// Sniffer: watches the link for ARP and neighbour advertisements that claim
// one of our VIPs from a MAC that is not ours (another node still holding it,
// or a misconfigured host), and reports each to JS.
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "args.h"
#include "arp.h"
#include "event_reader.h"
#include "link.h"
#include "ndisc.h"
#include "operations.h"
#include "packet_socket.h"

namespace {

struct SniffEvent {
  IpAddress address;
  uint8_t mac[6];
  const char* kind;  // 'arp-request' | 'arp-reply' | 'arp-probe' | 'na'
};

// Shared between the JS thread (setAddresses) and the reader thread.
struct SniffState {
  std::string ifname;
  LinkInfo link;
  std::mutex mutex;
  std::unordered_set<std::string> watched;  // IpAddress::Key() of each VIP

  bool Watched(const IpAddress& address) {
    std::lock_guard<std::mutex> lock(mutex);
    return watched.count(address.Key()) != 0;
  }
  void Set(const std::vector<IpAddress>& addresses) {
    std::lock_guard<std::mutex> lock(mutex);
    watched.clear();
    for (const IpAddress& address : addresses) watched.insert(address.Key());
  }
};

// Kernel-side filter: only ARP, and ICMPv6 neighbour advertisements without
// extension headers, reach this socket; everything else on a busy link is
// dropped before it is copied.
const sock_filter kFilterCode[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                 // ethertype
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_ARP, 5, 0),   // ARP -> accept
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IPV6, 0, 5),  // not IPv6 -> drop
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 6),             // next header
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_ICMPV6, 0, 3),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 40),            // ICMPv6 type
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kNeighbourAdvertisement, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xffff),                      // accept
      BPF_STMT(BPF_RET | BPF_K, 0),                           // drop
};

bool Classify(SniffState& state, const uint8_t* frame, size_t length, SniffEvent* event) {
  ArpFrame arp;
  if (ParseArp(frame, length, &arp)) {
    if (std::memcmp(arp.senderMac, state.link.mac, 6) == 0) return false;
    std::memcpy(event->mac, arp.senderMac, 6);
    IpAddress sender = IpFromBytes(AF_INET, arp.senderIp);
    if (state.Watched(sender)) {
      event->address = sender;
      event->kind = arp.operation == kArpReply ? "arp-reply" : "arp-request";
      return true;
    }
    static const uint8_t kAny[4] = {};
    IpAddress target = IpFromBytes(AF_INET, arp.targetIp);
    if (arp.operation == kArpRequest && std::memcmp(arp.senderIp, kAny, 4) == 0 &&
        state.Watched(target)) {
      event->address = target;
      event->kind = "arp-probe";
      return true;
    }
    return false;
  }
  NdiscFrame nd;
  if (ParseNdisc(frame, length, &nd) && nd.type == kNeighbourAdvertisement) {
    if (std::memcmp(nd.ethSource, state.link.mac, 6) == 0 ||
        std::memcmp(nd.linkAddress, state.link.mac, 6) == 0) {
      return false;
    }
    IpAddress target = IpFromBytes(AF_INET6, nd.target);
    if (!state.Watched(target)) return false;
    event->address = target;
    std::memcpy(event->mac, nd.linkAddress, 6);
    event->kind = "na";
    return true;
  }
  return false;
}

bool Drain(void* context, int fd, std::vector<SniffEvent>& events) {
  auto& state = *static_cast<SniffState*>(context);
  uint8_t frame[2048];
  for (int i = 0; i < 256; i++) {  // bounded: let close() in between on a flood
    sockaddr_ll from = {};
    socklen_t fromLength = sizeof from;
    ssize_t length = recvfrom(fd, frame, sizeof frame, MSG_DONTWAIT,
                              reinterpret_cast<sockaddr*>(&from), &fromLength);
    if (length < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      if (errno == ENETDOWN) return true;  // link went down; it may come back
      return false;
    }
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    SniffEvent event;
    if (Classify(state, frame, static_cast<size_t>(length), &event)) events.push_back(event);
  }
  return true;
}

class Sniffer : public Napi::ObjectWrap<Sniffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Sniffer",
                       {InstanceMethod("close", &Sniffer::Close),
                        InstanceMethod("setAddresses", &Sniffer::SetAddresses)});
  }

  // new Sniffer(ifname, addresses, onClaim)
  explicit Sniffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sniffer>(info) {
    std::string ifname = StringArg(info, 0, "ifname");
    std::vector<IpAddress> addresses = AddressListArg(info, 1, "addresses");
    Napi::Function callback = FunctionArg(info, 2, "onClaim");
    state_ = std::make_unique<SniffState>();
    state_->ifname = ifname;
    state_->Set(addresses);
    try {
      const char* action = "sniffing ARP/NA";
      state_->link = ResolveLink(ifname, action);
      sock_fprog filter = {static_cast<unsigned short>(sizeof kFilterCode / sizeof kFilterCode[0]),
                           const_cast<sock_filter*>(kFilterCode)};
      PacketSocket socket(state_->link.index, ETH_P_ALL, action, &filter);
      reader_ = std::make_unique<EventReader<SniffEvent>>(info.Env(), callback, "mta_vip.sniff",
                                                         socket.TakeFd(), Drain, state_.get(), ToJs);
    } catch (const SysError& error) {
      throw MakeError(info.Env(), error);
    }
    Ref();  // stay alive (and keep delivering) until close(), even if JS drops us
  }

 private:
  static Napi::Value ToJs(Napi::Env env, const SniffEvent& event) {
    Napi::Object object = Napi::Object::New(env);
    // ifname is filled in by the TypeScript wrapper, which knows it.
    object.Set("address", FormatIp(event.address));
    object.Set("mac", FormatMac(event.mac));
    object.Set("kind", event.kind);
    return object;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (reader_ && !reader_->stopped()) {
      reader_->Stop();
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value SetAddresses(const Napi::CallbackInfo& info) {
    state_->Set(AddressListArg(info, 0, "addresses"));
    return info.Env().Undefined();
  }

  std::unique_ptr<SniffState> state_;
  std::unique_ptr<EventReader<SniffEvent>> reader_;
};

}  // namespace

void InitSniffer(Napi::Env env, Napi::Object exports) {
  exports.Set("Sniffer", Sniffer::Define(env));
}
