#include "errors.h"

#include <string.h>

#include <cerrno>

namespace {

struct ErrnoName {
  int value;
  const char* code;
};

// The errors these syscalls actually return; anything else falls back to
// "E<number>" with strerror() in the message.
constexpr ErrnoName kErrnoNames[] = {
    {EPERM, "EPERM"},           {ENOENT, "ENOENT"},
    {EINTR, "EINTR"},           {EIO, "EIO"},
    {EBADF, "EBADF"},           {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},         {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},         {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},         {ENODEV, "ENODEV"},
    {EINVAL, "EINVAL"},         {ENFILE, "ENFILE"},
    {EMFILE, "EMFILE"},         {ENOSPC, "ENOSPC"},
    {ERANGE, "ERANGE"},         {ENOBUFS, "ENOBUFS"},
    {EMSGSIZE, "EMSGSIZE"},     {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
    {EOPNOTSUPP, "EOPNOTSUPP"}, {EAFNOSUPPORT, "EAFNOSUPPORT"},
    {EADDRINUSE, "EADDRINUSE"}, {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
    {ENETDOWN, "ENETDOWN"},     {ENETUNREACH, "ENETUNREACH"},
    {ENXIO, "ENXIO"},           {ETIMEDOUT, "ETIMEDOUT"},
    {EHOSTUNREACH, "EHOSTUNREACH"},
};

const char* CapabilityName(Capability capability) {
  switch (capability) {
    case Capability::kNetRaw:
      return "CAP_NET_RAW";
    case Capability::kNetAdmin:
      return "CAP_NET_ADMIN";
    case Capability::kNone:
      break;
  }
  return nullptr;
}

std::string Message(const SysError& error, const std::string& code) {
  const char* capability = CapabilityName(error.capability);
  if (capability != nullptr && (error.err == EPERM || error.err == EACCES)) {
    return error.action + " needs " + capability + " (" + code +
           "): run as root, or grant it: setcap cap_net_raw,cap_net_admin+ep "
           "$(readlink -f $(which node)), or under systemd "
           "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW";
  }
  char buffer[256];
  // GNU strerror_r returns the message (possibly not in buffer).
  const char* text = strerror_r(error.err, buffer, sizeof buffer);
  return error.action + " failed: " + text + " (" + code + ", " +
         error.syscall + ")";
}

}  // namespace

void ThrowErrno(const char* syscall, const char* action, Capability capability) {
  ThrowErr(errno, syscall, action, capability);
}

void ThrowErr(int err, const char* syscall, const char* action,
              Capability capability) {
  throw SysError{err, syscall, action, capability};
}

std::string ErrnoCode(int err) {
  for (const auto& name : kErrnoNames) {
    if (name.value == err) return name.code;
  }
  return "E" + std::to_string(err);
}

Napi::Error MakeError(Napi::Env env, const SysError& error) {
  std::string code = ErrnoCode(error.err);
  Napi::Error result = Napi::Error::New(env, Message(error, code));
  Napi::Object object = result.Value();
  object.Set("code", code);
  object.Set("errno", error.err);
  object.Set("syscall", error.syscall);
  if (const char* capability = CapabilityName(error.capability)) {
    if (error.err == EPERM || error.err == EACCES) {
      object.Set("capability", capability);
    }
  }
  return result;
}
