// addAddress / removeAddress through rtnetlink, idempotent: adding an address
// that is present and removing one that is absent both succeed, because the
// election may repeat an effect after a restart or a race with an operator.
#include <linux/if_addr.h>
#include <net/if.h>

#include <cerrno>
#include <string>

#include "args.h"
#include "netlink.h"
#include "operations.h"
#include "worker.h"

namespace {

class AddressWorker : public PromiseWorker {
 public:
  AddressWorker(Napi::Env env, bool add, std::string ifname, IpAddress address, uint32_t prefix)
      : PromiseWorker(env, add ? "mta_vip.addAddress" : "mta_vip.removeAddress"),
        add_(add),
        ifname_(std::move(ifname)),
        address_(address),
        prefix_(prefix) {}

 protected:
  void Run() override {
    const char* action = add_ ? "adding an address" : "removing an address";
    unsigned index = if_nametoindex(ifname_.c_str());
    if (index == 0) ThrowErrno("if_nametoindex", action);

    NetlinkRequest request(add_ ? RTM_NEWADDR : RTM_DELADDR,
                           add_ ? NLM_F_CREATE | NLM_F_EXCL : 0);
    auto* ifa = request.Payload<ifaddrmsg>();
    ifa->ifa_family = static_cast<uint8_t>(address_.family);
    ifa->ifa_prefixlen = static_cast<uint8_t>(prefix_);
    ifa->ifa_index = index;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    request.AddAttribute(IFA_LOCAL, address_.bytes, address_.size());
    // IFA_ADDRESS with the prefix makes a delete match only this exact entry.
    request.AddAttribute(IFA_ADDRESS, address_.bytes, address_.size());
    if (add_ && address_.family == AF_INET6) {
      // A VIP moves between hosts on purpose: duplicate address detection
      // would keep it tentative (unusable) for a second or more.
      uint32_t flags = IFA_F_NODAD;
      ifa->ifa_flags = IFA_F_NODAD;
      request.AddAttribute(IFA_FLAGS, &flags, sizeof flags);
    }

    Netlink netlink;
    int err = netlink.Execute(request, action);
    if (err == 0) return;
    if (add_ && err == EEXIST) return;           // already there
    if (!add_ && err == EADDRNOTAVAIL) return;   // already gone
    ThrowErr(err, add_ ? "netlink RTM_NEWADDR" : "netlink RTM_DELADDR", action,
             Capability::kNetAdmin);
  }

  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  bool add_;
  std::string ifname_;
  IpAddress address_;
  uint32_t prefix_;
};

Napi::Value Start(const Napi::CallbackInfo& info, bool add) {
  std::string ifname = StringArg(info, 0, "ifname");
  IpAddress address = AddressArg(info, 1, "address");
  uint32_t prefix = UintArg(info, 2, "prefix");
  if (prefix > (address.family == AF_INET ? 32u : 128u)) {
    throw Napi::RangeError::New(info.Env(), "prefix is out of range");
  }
  return (new AddressWorker(info.Env(), add, ifname, address, prefix))->Start();
}

}  // namespace

Napi::Value AddAddress(const Napi::CallbackInfo& info) { return Start(info, true); }
Napi::Value RemoveAddress(const Napi::CallbackInfo& info) { return Start(info, false); }
