// Base for every operation that may block: Run() executes on a libuv worker
// thread and may throw SysError; the promise settles on the JS thread.
#pragma once

#include <napi.h>

#include <exception>

#include <cerrno>

#include "errors.h"

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  // Queues the worker and hands its promise to JS. The worker deletes itself.
  Napi::Promise Start() {
    Napi::Promise promise = deferred_.Promise();
    Queue();
    return promise;
  }

 protected:
  virtual void Run() = 0;                              // worker thread
  virtual Napi::Value Result(Napi::Env env) = 0;       // JS thread

 private:
  void Execute() override {
    try {
      Run();
    } catch (const SysError& error) {
      error_ = error;
      SetError(error.syscall);
    } catch (const std::exception& error) {
      error_ = SysError{EIO, "internal", std::string("internal error: ") + error.what()};
      SetError(error.what());
    }
  }

  void OnOK() override { deferred_.Resolve(Result(Env())); }
  void OnError(const Napi::Error&) override {
    deferred_.Reject(MakeError(Env(), error_).Value());
  }

  Napi::Promise::Deferred deferred_;
  SysError error_;
};
