// Reading arguments from JS. The TypeScript wrapper validates everything with
// clear messages first; these checks only keep a direct caller of the raw
// addon from crashing the process.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "ip.h"

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);
uint32_t UintArg(const Napi::CallbackInfo& info, size_t index, const char* name);
IpAddress AddressArg(const Napi::CallbackInfo& info, size_t index, const char* name);
std::vector<IpAddress> AddressListArg(const Napi::CallbackInfo& info, size_t index,
                                      const char* name);
Napi::Function FunctionArg(const Napi::CallbackInfo& info, size_t index, const char* name);
