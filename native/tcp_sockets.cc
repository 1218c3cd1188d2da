// tcpSockets(addresses, listening) and destroyTcpSockets(addresses, listening):
// the TCP sockets of every process on this host whose *local* address is one
// of `addresses`, read and reset through NETLINK_SOCK_DIAG.
//
// Why the kernel and not the MTA: a VIP's sessions live in other processes
// (ZoneMTA senders and receivers, Haraka workers) and in sockets no process
// owns any more (an orphan still retransmitting a killed worker's last
// "."). Before an address leaves, the node must know whether sessions still
// use it (drain) and must reset the rest while their RST can still leave from
// that address: once the alias is gone the kernel can no longer answer for
// it, and the peer waits in silence until its own timeout.
//
// SOCK_DESTROY (tcp_abort) sends a RST to the peer and fails the local
// socket with ECONNABORTED, so the MTA that owned it sees an error at once and
// defers instead of hanging. It needs CAP_NET_ADMIN and a kernel built with
// CONFIG_INET_DIAG_DESTROY; without it the call fails with EOPNOTSUPP.
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "args.h"
#include "netlink.h"
#include "operations.h"
#include "worker.h"

namespace {

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const char* const kStateNames[] = {"UNKNOWN",    "ESTABLISHED", "SYN_SENT", "SYN_RECV",
                                   "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                   "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING",
                                   "NEW_SYN_RECV"};
constexpr int kListen = 10;
constexpr int kTimeWait = 6;
constexpr int kClose = 7;

struct TcpSocket {
  int family = 0;  // of the socket: AF_INET6 for a dual-stack socket serving IPv4
  inet_diag_sockid id = {};
  IpAddress local;   // IPv4-mapped IPv6 addresses are given as IPv4
  IpAddress remote;
  int state = 0;
  bool owned = false;  // a process holds it (inode != 0); orphans have none
  uint32_t sendQueue = 0;
  // From tcp_info: how long ago data was last sent / received (ms); whose
  // turn it is tells a session waiting for its peer from an idle pooled one.
  int64_t lastSentMsAgo = -1;
  int64_t lastReceivedMsAgo = -1;
};

// ::ffff:a.b.c.d -> a.b.c.d, so a wildcard IPv6 listener's IPv4 sessions match IPv4 VIPs.
IpAddress Unmapped(const IpAddress& address) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (address.family == AF_INET6 && std::memcmp(address.bytes, prefix, 12) == 0) {
    return IpFromBytes(AF_INET, address.bytes + 12);
  }
  return address;
}

std::string MatchKey(const IpAddress& address) {
  return std::to_string(address.family) + ":" + address.Key();
}

// Every TCP socket (both families) whose local address is in `wanted`.
std::vector<TcpSocket> DumpTcpSockets(const std::set<std::string>& wanted, bool listening,
                                      const char* action) {
  std::vector<TcpSocket> found;
  Netlink diag(0, NETLINK_SOCK_DIAG);
  // TIME_WAIT and CLOSE hold no session; LISTEN only when asked.
  uint32_t states = ~0u & ~(1u << kTimeWait) & ~(1u << kClose);
  if (!listening) states &= ~(1u << kListen);
  for (int family : {AF_INET, AF_INET6}) {
    NetlinkRequest request(SOCK_DIAG_BY_FAMILY, 0);
    auto* req = request.Payload<inet_diag_req_v2>();
    req->sdiag_family = static_cast<uint8_t>(family);
    req->sdiag_protocol = IPPROTO_TCP;
    req->idiag_states = states;
    req->idiag_ext = 1 << (INET_DIAG_INFO - 1);
    diag.Dump(request, action, [&](const nlmsghdr* message) {
      if (message->nlmsg_type != SOCK_DIAG_BY_FAMILY) return;
      if (message->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) return;
      auto* msg = reinterpret_cast<const inet_diag_msg*>(NLMSG_DATA(message));
      TcpSocket socket;
      socket.family = msg->idiag_family;
      socket.id = msg->id;
      socket.local = Unmapped(IpFromBytes(msg->idiag_family, msg->id.idiag_src));
      if (wanted.count(MatchKey(socket.local)) == 0) return;
      socket.remote = Unmapped(IpFromBytes(msg->idiag_family, msg->id.idiag_dst));
      socket.state = msg->idiag_state;
      socket.owned = msg->idiag_inode != 0;
      socket.sendQueue = msg->idiag_wqueue;
      const rtattr* table[INET_DIAG_MAX + 1];
      ParseAttributes(reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(msg) +
                                                      NLMSG_ALIGN(sizeof(inet_diag_msg))),
                      static_cast<int>(message->nlmsg_len - NLMSG_LENGTH(sizeof(inet_diag_msg))),
                      table, INET_DIAG_MAX);
      const rtattr* info = table[INET_DIAG_INFO];
      // Older kernels send a shorter tcp_info; both fields are in every version since 2.6.
      if (info != nullptr &&
          AttributeLength(info) >= offsetof(tcp_info, tcpi_last_ack_recv)) {
        tcp_info tcp = {};
        std::memcpy(&tcp, AttributeData(info), std::min(AttributeLength(info), sizeof tcp));
        socket.lastSentMsAgo = tcp.tcpi_last_data_sent;
        socket.lastReceivedMsAgo = tcp.tcpi_last_data_recv;
      }
      found.push_back(socket);
    });
  }
  return found;
}

std::set<std::string> KeysOf(const std::vector<IpAddress>& addresses) {
  std::set<std::string> keys;
  for (const IpAddress& address : addresses) keys.insert(MatchKey(Unmapped(address)));
  return keys;
}

class TcpSocketsWorker : public PromiseWorker {
 public:
  TcpSocketsWorker(Napi::Env env, std::vector<IpAddress> addresses, bool listening)
      : PromiseWorker(env, "mta_vip.tcpSockets"),
        addresses_(std::move(addresses)),
        listening_(listening) {}

 protected:
  void Run() override {
    sockets_ = DumpTcpSockets(KeysOf(addresses_), listening_, "listing TCP sockets");
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array result = Napi::Array::New(env, sockets_.size());
    for (size_t i = 0; i < sockets_.size(); i++) {
      const TcpSocket& socket = sockets_[i];
      Napi::Object object = Napi::Object::New(env);
      object.Set("local", FormatIp(socket.local));
      object.Set("localPort", ntohs(socket.id.idiag_sport));
      object.Set("remote", FormatIp(socket.remote));
      object.Set("remotePort", ntohs(socket.id.idiag_dport));
      object.Set("state", socket.state >= 0 && socket.state <= 12 ? kStateNames[socket.state]
                                                                   : "UNKNOWN");
      object.Set("owned", socket.owned);
      object.Set("sendQueue", socket.sendQueue);
      object.Set("lastSentMsAgo", static_cast<double>(socket.lastSentMsAgo));
      object.Set("lastReceivedMsAgo", static_cast<double>(socket.lastReceivedMsAgo));
      result.Set(static_cast<uint32_t>(i), object);
    }
    return result;
  }

 private:
  std::vector<IpAddress> addresses_;
  bool listening_;
  std::vector<TcpSocket> sockets_;
};

class DestroyWorker : public PromiseWorker {
 public:
  DestroyWorker(Napi::Env env, std::vector<IpAddress> addresses, bool listening)
      : PromiseWorker(env, "mta_vip.destroyTcpSockets"),
        addresses_(std::move(addresses)),
        listening_(listening) {}

 protected:
  void Run() override {
    const char* action = "resetting TCP sockets";
    std::vector<TcpSocket> sockets = DumpTcpSockets(KeysOf(addresses_), listening_, action);
    Netlink diag(0, NETLINK_SOCK_DIAG);
    for (const TcpSocket& socket : sockets) {
      NetlinkRequest request(SOCK_DESTROY, 0);
      auto* req = request.Payload<inet_diag_req_v2>();
      req->sdiag_family = static_cast<uint8_t>(socket.family);
      req->sdiag_protocol = IPPROTO_TCP;
      req->idiag_states = ~0u;
      // The cookie pins the exact socket: a new one reusing the 4-tuple is left alone.
      req->id = socket.id;
      int err = diag.Execute(request, action);
      if (err == 0) {
        destroyed_++;
        byAddress_[FormatIp(socket.local)]++;
      } else if (err == ENOENT) {
        gone_++;  // closed between the dump and now
      } else if (err == EPERM || err == EACCES || err == EOPNOTSUPP) {
        // Nothing else will work either: say why (capability or kernel option).
        ThrowErr(err, "netlink SOCK_DESTROY", action, Capability::kNetAdmin);
      } else {
        failed_++;
        lastError_ = err;
      }
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object object = Napi::Object::New(env);
    object.Set("destroyed", destroyed_);
    object.Set("gone", gone_);
    object.Set("failed", failed_);
    // Per local address, so one call can serve several releases (their drains batched).
    Napi::Object byAddress = Napi::Object::New(env);
    for (const auto& [address, count] : byAddress_) byAddress.Set(address, count);
    object.Set("byAddress", byAddress);
    object.Set("lastError", lastError_ ? Napi::Value(Napi::String::New(env, ErrnoCode(lastError_)))
                                       : env.Null());
    return object;
  }

 private:
  std::vector<IpAddress> addresses_;
  bool listening_;
  uint32_t destroyed_ = 0;
  uint32_t gone_ = 0;
  uint32_t failed_ = 0;
  std::map<std::string, uint32_t> byAddress_;
  int lastError_ = 0;
};

bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a boolean");
  }
  return info[index].As<Napi::Boolean>().Value();
}

}  // namespace

// tcpSockets(addresses, listening) -> Promise<{local, localPort, remote, remotePort, state, owned, sendQueue}[]>
Napi::Value TcpSockets(const Napi::CallbackInfo& info) {
  return (new TcpSocketsWorker(info.Env(), AddressListArg(info, 0, "addresses"),
                               BoolArg(info, 1, "listening")))
      ->Start();
}

// destroyTcpSockets(addresses, listening) -> Promise<{destroyed, gone, failed, byAddress, lastError}>
Napi::Value DestroyTcpSockets(const Napi::CallbackInfo& info) {
  return (new DestroyWorker(info.Env(), AddressListArg(info, 0, "addresses"),
                            BoolArg(info, 1, "listening")))
      ->Start();
}
