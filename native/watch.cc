// Watcher: link and address changes from rtnetlink multicast groups, so the
// daemon notices a link going down or a VIP removed behind its back.
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "event_reader.h"
#include "netlink.h"
#include "operations.h"

namespace {

struct WatchEvent {
  const char* type;  // 'link' | 'address-added' | 'address-removed'
  std::string ifname;
  int index = 0;
  bool up = false;
  bool running = false;
  IpAddress address;
  uint32_t prefix = 0;
};

bool LinkEvent(const nlmsghdr* message, WatchEvent* event) {
  auto* ifi = reinterpret_cast<const ifinfomsg*>(NLMSG_DATA(message));
  const rtattr* table[IFLA_MAX + 1];
  ParseAttributes(IFLA_RTA(ifi), static_cast<int>(IFLA_PAYLOAD(message)), table, IFLA_MAX);
  event->type = "link";
  event->index = ifi->ifi_index;
  if (table[IFLA_IFNAME]) event->ifname = static_cast<const char*>(AttributeData(table[IFLA_IFNAME]));
  // A deleted link is reported as down.
  bool deleted = message->nlmsg_type == RTM_DELLINK;
  event->up = !deleted && (ifi->ifi_flags & IFF_UP) != 0;
  event->running = !deleted && (ifi->ifi_flags & IFF_RUNNING) != 0;
  return true;
}

bool AddressEvent(const nlmsghdr* message, WatchEvent* event) {
  auto* ifa = reinterpret_cast<const ifaddrmsg*>(NLMSG_DATA(message));
  if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return false;
  const rtattr* table[IFA_MAX + 1];
  ParseAttributes(IFA_RTA(ifa), static_cast<int>(IFA_PAYLOAD(message)), table, IFA_MAX);
  const rtattr* local = table[IFA_LOCAL] ? table[IFA_LOCAL] : table[IFA_ADDRESS];
  if (local == nullptr) return false;
  event->type = message->nlmsg_type == RTM_NEWADDR ? "address-added" : "address-removed";
  event->index = static_cast<int>(ifa->ifa_index);
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(ifa->ifa_index, name) != nullptr) {
    event->ifname = name;
  } else if (table[IFA_LABEL]) {
    event->ifname = static_cast<const char*>(AttributeData(table[IFA_LABEL]));
  }
  event->address = IpFromBytes(ifa->ifa_family, AttributeData(local));
  event->prefix = ifa->ifa_prefixlen;
  return true;
}

bool Drain(void*, int fd, std::vector<WatchEvent>& events) {
  std::vector<char> buffer(65536);
  for (int i = 0; i < 64; i++) {
    ssize_t length = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (length < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      // ENOBUFS: the kernel dropped events because we fell behind. Keep going;
      // the daemon re-reads interfaces() periodically anyway.
      if (errno == ENOBUFS) continue;
      return false;
    }
    int remaining = static_cast<int>(length);
    for (auto* message = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(message, remaining);
         message = NLMSG_NEXT(message, remaining)) {
      WatchEvent event;
      bool ok = false;
      switch (message->nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK:
          ok = LinkEvent(message, &event);
          break;
        case RTM_NEWADDR:
        case RTM_DELADDR:
          ok = AddressEvent(message, &event);
          break;
        default:
          break;
      }
      if (ok) events.push_back(std::move(event));
    }
  }
  return true;
}

Napi::Value ToJs(Napi::Env env, const WatchEvent& event) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("type", event.type);
  object.Set("ifname", event.ifname);
  object.Set("index", event.index);
  if (std::strcmp(event.type, "link") == 0) {
    object.Set("up", event.up);
    object.Set("running", event.running);
  } else {
    object.Set("family", event.address.family == AF_INET ? 4 : 6);
    object.Set("address", FormatIp(event.address));
    object.Set("prefix", event.prefix);
  }
  return object;
}

class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Watcher", {InstanceMethod("close", &Watcher::Close)});
  }

  // new Watcher(onEvent)
  explicit Watcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Watcher>(info) {
    Napi::Function callback = FunctionArg(info, 0, "onEvent");
    try {
      const char* action = "watching links and addresses";
      Netlink netlink(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
      Fd fd(fcntl(netlink.fd(), F_DUPFD_CLOEXEC, 0));
      if (!fd.valid()) ThrowErrno("fcntl", action);
      if (fcntl(fd.get(), F_SETFL, O_NONBLOCK) != 0) ThrowErrno("fcntl", action);
      int size = 1 << 20;  // bursts (1,000 VIPs added at once) must not overflow
      setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
      reader_ = std::make_unique<EventReader<WatchEvent>>(info.Env(), callback, "mta_vip.watch",
                                                         std::move(fd), Drain, nullptr, ToJs);
    } catch (const SysError& error) {
      throw MakeError(info.Env(), error);
    }
    Ref();
  }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (reader_ && !reader_->stopped()) {
      reader_->Stop();
      Unref();
    }
    return info.Env().Undefined();
  }

  std::unique_ptr<EventReader<WatchEvent>> reader_;
};

}  // namespace

void InitWatcher(Napi::Env env, Napi::Object exports) {
  exports.Set("Watcher", Watcher::Define(env));
}
