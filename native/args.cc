#include "args.h"

namespace {

[[noreturn]] void ThrowType(Napi::Env env, const char* name, const char* expected) {
  throw Napi::TypeError::New(env, std::string(name) + " must be " + expected);
}

IpAddress ParseOrThrow(Napi::Env env, const std::string& text, const char* name) {
  IpAddress address;
  if (!ParseIp(text, &address)) {
    throw Napi::TypeError::New(
        env, std::string(name) + " \"" + text + "\" is not an IPv4 or IPv6 address");
  }
  return address;
}

}  // namespace

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsString()) ThrowType(info.Env(), name, "a string");
  return info[index].As<Napi::String>().Utf8Value();
}

uint32_t UintArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsNumber()) ThrowType(info.Env(), name, "a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= 4294967295.0)) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " is out of range");
  }
  return static_cast<uint32_t>(value);
}

IpAddress AddressArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return ParseOrThrow(info.Env(), StringArg(info, index, name), name);
}

std::vector<IpAddress> AddressListArg(const Napi::CallbackInfo& info, size_t index,
                                      const char* name) {
  if (!info[index].IsArray()) ThrowType(info.Env(), name, "an array of strings");
  Napi::Array array = info[index].As<Napi::Array>();
  std::vector<IpAddress> addresses;
  addresses.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) ThrowType(info.Env(), name, "an array of strings");
    addresses.push_back(ParseOrThrow(info.Env(), item.As<Napi::String>().Utf8Value(), name));
  }
  return addresses;
}

Napi::Function FunctionArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsFunction()) ThrowType(info.Env(), name, "a function");
  return info[index].As<Napi::Function>();
}
