#include "packet_socket.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "close_later.h"
#include "errors.h"

namespace {

// send()/sendto() with a bounded wait when the socket buffer is full: a burst
// of 1,000 frames must not fail the batch.
void SendWithRetry(int fd, const uint8_t* frame, size_t length, const sockaddr_ll* to,
                   const char* action) {
  for (int attempt = 0;; attempt++) {
    ssize_t sent = to ? sendto(fd, frame, length, 0, reinterpret_cast<const sockaddr*>(to), sizeof *to)
                      : send(fd, frame, length, 0);
    if (sent >= 0) return;
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == ENOBUFS) && attempt < 100) {
      pollfd writable = {fd, POLLOUT, 0};
      poll(&writable, 1, 10);
      continue;
    }
    ThrowErrno(to ? "sendto" : "send", action, Capability::kNetRaw);
  }
}

std::mutex sendSocketMutex;
int sendSocket = -1;  // never closed: one fd for the life of the process

int SendSocket(const char* action) {
  std::lock_guard<std::mutex> lock(sendSocketMutex);
  if (sendSocket < 0) {
    // Not cached on failure: a later call may have gained the capability.
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) ThrowErrno("socket", action, Capability::kNetRaw);
    sendSocket = fd;
  }
  return sendSocket;
}

}  // namespace

void SendFrame(int ifindex, const uint8_t* frame, size_t length, const char* action) {
  sockaddr_ll to = {};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = ifindex;
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, frame, 6);  // the frame's Ethernet destination
  // The frame's ethertype (already in network order), so skb->protocol is
  // right for qdiscs and drivers that look at it.
  if (length >= 14) std::memcpy(&to.sll_protocol, frame + 12, 2);
  SendWithRetry(SendSocket(action), frame, length, &to, action);
}

PacketSocket::PacketSocket(int ifindex, uint16_t protocol, const char* action,
                           const sock_fprog* filter) {
  // Protocol 0 at creation, the real one at bind: the socket then hooks into
  // the stack once, already bound, which avoids a second grace period (and
  // frames from other interfaces queued before the bind).
  fd_ = Fd(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd_.valid()) ThrowErrno("socket", action, Capability::kNetRaw);
  if (filter != nullptr &&
      setsockopt(fd_.get(), SOL_SOCKET, SO_ATTACH_FILTER, filter, sizeof *filter) != 0) {
    ThrowErrno("setsockopt SO_ATTACH_FILTER", action, Capability::kNetRaw);
  }
  sockaddr_ll local = {};
  local.sll_family = AF_PACKET;
  local.sll_protocol = htons(protocol);
  local.sll_ifindex = ifindex;
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    ThrowErrno("bind", action, Capability::kNetRaw);
  }
}

PacketSocket::~PacketSocket() { CloseLater(std::move(fd_)); }

void PacketSocket::Send(const uint8_t* frame, size_t length, const char* action) {
  SendWithRetry(fd_.get(), frame, length, nullptr, action);
}

ssize_t PacketSocket::Receive(uint8_t* buffer, size_t size, int timeoutMs, const char* action) {
  int64_t deadline = NowMs() + timeoutMs;
  for (;;) {
    sockaddr_ll from = {};
    socklen_t fromLength = sizeof from;
    ssize_t length = recvfrom(fd_.get(), buffer, size, 0, reinterpret_cast<sockaddr*>(&from),
                              &fromLength);
    if (length >= 0) {
      if (from.sll_pkttype == PACKET_OUTGOING) continue;
      return length;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) ThrowErrno("recvfrom", action);
    int64_t left = deadline - NowMs();
    if (left <= 0) return -1;
    pollfd readable = {fd_.get(), POLLIN, 0};
    if (poll(&readable, 1, static_cast<int>(left)) < 0 && errno != EINTR) {
      ThrowErrno("poll", action);
    }
  }
}

int64_t NowMs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}
