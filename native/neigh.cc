#include "neigh.h"

#include <linux/neighbour.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "args.h"
#include "netlink.h"
#include "operations.h"
#include "worker.h"

std::vector<NeighbourEntry> DumpNeighbours(int ifindex, const char* action) {
  std::vector<NeighbourEntry> entries;
  Netlink netlink;
  NetlinkRequest request(RTM_GETNEIGH, 0);
  request.Payload<ndmsg>()->ndm_family = AF_UNSPEC;
  netlink.Dump(request, action, [&](const nlmsghdr* message) {
    if (message->nlmsg_type != RTM_NEWNEIGH) return;
    auto* ndm = reinterpret_cast<const ndmsg*>(NLMSG_DATA(message));
    if (ndm->ndm_ifindex != ifindex) return;
    if (ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6) return;
    const rtattr* table[NDA_MAX + 1];
    ParseAttributes(reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(ndm) +
                                                    NLMSG_ALIGN(sizeof(ndmsg))),
                    static_cast<int>(message->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg))), table,
                    NDA_MAX);
    const rtattr* destination = table[NDA_DST];
    if (destination == nullptr) return;
    NeighbourEntry entry;
    entry.address = IpFromBytes(ndm->ndm_family, AttributeData(destination));
    if (AttributeLength(destination) != entry.address.size()) return;
    entry.state = ndm->ndm_state;
    if (const rtattr* lladdr = table[NDA_LLADDR]; lladdr && AttributeLength(lladdr) == 6) {
      entry.hasMac = true;
      std::memcpy(entry.mac, AttributeData(lladdr), 6);
    }
    entries.push_back(entry);
  });
  return entries;
}

const char* NeighbourStateName(uint16_t state) {
  // The most significant bit wins; the kernel reports one state at a time.
  if (state & NUD_PERMANENT) return "PERMANENT";
  if (state & NUD_NOARP) return "NOARP";
  if (state & NUD_FAILED) return "FAILED";
  if (state & NUD_PROBE) return "PROBE";
  if (state & NUD_DELAY) return "DELAY";
  if (state & NUD_STALE) return "STALE";
  if (state & NUD_REACHABLE) return "REACHABLE";
  if (state & NUD_INCOMPLETE) return "INCOMPLETE";
  return "NONE";
}

namespace {

class NeighboursWorker : public PromiseWorker {
 public:
  NeighboursWorker(Napi::Env env, std::string ifname)
      : PromiseWorker(env, "mta_vip.neighbours"), ifname_(std::move(ifname)) {}

 protected:
  void Run() override {
    const char* action = "reading neighbours";
    int index = static_cast<int>(if_nametoindex(ifname_.c_str()));
    if (index == 0) ThrowErrno("if_nametoindex", action);
    entries_ = DumpNeighbours(index, action);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array result = Napi::Array::New(env, entries_.size());
    for (size_t i = 0; i < entries_.size(); i++) {
      const NeighbourEntry& entry = entries_[i];
      Napi::Object object = Napi::Object::New(env);
      object.Set("address", FormatIp(entry.address));
      object.Set("mac", entry.hasMac ? Napi::Value(Napi::String::New(env, FormatMac(entry.mac)))
                                     : env.Null());
      object.Set("state", NeighbourStateName(entry.state));
      result.Set(static_cast<uint32_t>(i), object);
    }
    return result;
  }

 private:
  std::string ifname_;
  std::vector<NeighbourEntry> entries_;
};

}  // namespace

// neighbours(ifname) -> Promise<{address, mac, state}[]>
Napi::Value Neighbours(const Napi::CallbackInfo& info) {
  return (new NeighboursWorker(info.Env(), StringArg(info, 0, "ifname")))->Start();
}
