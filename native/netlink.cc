#include "netlink.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

NetlinkRequest::NetlinkRequest(uint16_t type, uint16_t flags) {
  header()->nlmsg_len = NLMSG_LENGTH(0);
  header()->nlmsg_type = type;
  header()->nlmsg_flags = NLM_F_REQUEST | flags;
}

void NetlinkRequest::AddAttribute(uint16_t type, const void* data, size_t length) {
  size_t offset = NLMSG_ALIGN(header()->nlmsg_len);
  size_t total = RTA_LENGTH(length);
  if (offset + RTA_ALIGN(total) > sizeof buffer_) {
    throw SysError{EMSGSIZE, "netlink", "building a netlink request"};
  }
  auto* attribute = reinterpret_cast<rtattr*>(buffer_ + offset);
  attribute->rta_type = type;
  attribute->rta_len = static_cast<unsigned short>(total);
  std::memcpy(RTA_DATA(attribute), data, length);
  header()->nlmsg_len = static_cast<uint32_t>(offset + RTA_ALIGN(total));
}

Netlink::Netlink(uint32_t groups, int protocol) {
  fd_ = Fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (!fd_.valid()) ThrowErrno("socket", "opening a netlink socket");
  sockaddr_nl local = {};
  local.nl_family = AF_NETLINK;
  local.nl_groups = groups;
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    ThrowErrno("bind", "binding a netlink socket");
  }
}

void Netlink::Send(NetlinkRequest& request, const char* action) {
  request.header()->nlmsg_seq = ++sequence_;
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(fd_.get(), request.header(), request.header()->nlmsg_len, 0,
                  reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) ThrowErrno("sendto", action);
}

namespace {

// Receives one datagram (possibly several netlink messages) into `buffer`.
size_t Receive(int fd, std::vector<char>& buffer, const char* action) {
  ssize_t length;
  do {
    length = recv(fd, buffer.data(), buffer.size(), 0);
  } while (length < 0 && errno == EINTR);
  if (length < 0) ThrowErrno("recv", action);
  return static_cast<size_t>(length);
}

}  // namespace

int Netlink::Execute(NetlinkRequest& request, const char* action) {
  request.header()->nlmsg_flags |= NLM_F_ACK;
  Send(request, action);
  std::vector<char> buffer(8192);
  for (;;) {
    size_t length = Receive(fd_.get(), buffer, action);
    int remaining = static_cast<int>(length);
    for (auto* message = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(message, remaining);
         message = NLMSG_NEXT(message, remaining)) {
      if (message->nlmsg_seq != sequence_) continue;  // stale answer to an earlier request
      if (message->nlmsg_type == NLMSG_ERROR) {
        auto* error = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(message));
        return -error->error;  // 0 is the ACK itself
      }
    }
  }
}

void Netlink::Dump(NetlinkRequest& request, const char* action,
                   const std::function<void(const nlmsghdr*)>& each) {
  request.header()->nlmsg_flags |= NLM_F_DUMP;
  Send(request, action);
  std::vector<char> buffer(65536);
  for (;;) {
    size_t length = Receive(fd_.get(), buffer, action);
    int remaining = static_cast<int>(length);
    for (auto* message = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(message, remaining);
         message = NLMSG_NEXT(message, remaining)) {
      if (message->nlmsg_seq != sequence_) continue;
      if (message->nlmsg_type == NLMSG_DONE) return;
      if (message->nlmsg_type == NLMSG_ERROR) {
        auto* error = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(message));
        if (error->error != 0) ThrowErr(-error->error, "netlink dump", action);
        return;
      }
      each(message);
    }
  }
}

void ParseAttributes(const rtattr* first, int length, const rtattr** table, int max) {
  for (int i = 0; i <= max; i++) table[i] = nullptr;
  for (auto* attribute = first; RTA_OK(attribute, length);
       attribute = RTA_NEXT(attribute, length)) {
    if (attribute->rta_type <= max) table[attribute->rta_type] = attribute;
  }
}
