#include "link.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "fd.h"

LinkInfo ResolveLink(const std::string& ifname, const char* action) {
  LinkInfo link;
  if (ifname.size() >= IFNAMSIZ) ThrowErr(ENODEV, "if_nametoindex", action);
  link.index = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (link.index == 0) ThrowErrno("if_nametoindex", action);

  // Any socket reaches the device ioctls; a datagram socket needs no privilege.
  Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) ThrowErrno("socket", action);
  ifreq request = {};
  std::memcpy(request.ifr_name, ifname.c_str(), ifname.size());
  if (ioctl(fd.get(), SIOCGIFHWADDR, &request) != 0) ThrowErrno("ioctl SIOCGIFHWADDR", action);
  std::memcpy(link.mac, request.ifr_hwaddr.sa_data, 6);
  return link;
}
