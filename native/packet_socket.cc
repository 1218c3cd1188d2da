#include "packet_socket.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>

#include "errors.h"

PacketSocket::PacketSocket(int ifindex, uint16_t protocol, const char* action) {
  fd_ = Fd(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(protocol)));
  if (!fd_.valid()) ThrowErrno("socket", action, Capability::kNetRaw);
  sockaddr_ll local = {};
  local.sll_family = AF_PACKET;
  local.sll_protocol = htons(protocol);
  local.sll_ifindex = ifindex;
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    ThrowErrno("bind", action, Capability::kNetRaw);
  }
}

void PacketSocket::Send(const uint8_t* frame, size_t length, const char* action) {
  // A burst of 1,000 frames can fill the socket's send buffer: wait for room
  // a bounded number of times instead of failing the whole batch.
  for (int attempt = 0;; attempt++) {
    ssize_t sent = send(fd_.get(), frame, length, 0);
    if (sent >= 0) return;
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == ENOBUFS) && attempt < 100) {
      pollfd writable = {fd_.get(), POLLOUT, 0};
      poll(&writable, 1, 10);
      continue;
    }
    ThrowErrno("send", action, Capability::kNetRaw);
  }
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
