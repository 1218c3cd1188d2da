// Syscall failures, carried from worker threads to JavaScript.
//
// C++ code throws SysError (plain data, safe on any thread); the JS side turns
// it into an Error with `code` ('EPERM'), `errno` (number), `syscall`, and a
// message that names the missing capability and how to grant it, because the
// usual reason an operator sees these errors is running without privileges.
#pragma once

#include <napi.h>

#include <string>

// Which privilege an operation needs; decides the hint in EPERM/EACCES messages.
enum class Capability { kNone, kNetRaw, kNetAdmin };

struct SysError {
  int err = 0;             // positive errno value
  std::string syscall;     // e.g. "socket", "sendto", "netlink RTM_NEWADDR"
  std::string action;      // what we were doing, e.g. "sending ARP"
  Capability capability = Capability::kNone;
};

// Throws SysError for the current errno.
[[noreturn]] void ThrowErrno(const char* syscall, const char* action,
                             Capability capability = Capability::kNone);
[[noreturn]] void ThrowErr(int err, const char* syscall, const char* action,
                           Capability capability = Capability::kNone);

// 'EPERM' for EPERM, ... ; "E<number>" when the value is not in the table.
std::string ErrnoCode(int err);

// The JS Error for a SysError (code, errno, syscall, capability, message).
Napi::Error MakeError(Napi::Env env, const SysError& error);
