// Reads a non-blocking socket on a dedicated thread and calls a JS function
// on the JS thread for every event (through a ThreadSafeFunction; the
// Node-API headers used by cmake-js carry no libuv, so no uv_poll_t).
//
// While open, the ThreadSafeFunction keeps the process alive like a listening
// server; Stop() (idempotent) wakes the thread through an eventfd, joins it and
// releases the function, so the process can exit. An env cleanup hook stops
// the thread when the process exits with the reader still open.
#pragma once

#include <napi.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <thread>
#include <vector>

#include "close_later.h"
#include "errors.h"
#include "fd.h"

template <typename Event>
class EventReader {
 public:
  // Drains the readable socket into `events`; returns false to stop reading.
  using Drain = bool (*)(void* context, int fd, std::vector<Event>& events);
  using ToJs = Napi::Value (*)(Napi::Env env, const Event& event);

  EventReader(Napi::Env env, Napi::Function callback, const char* name, Fd socket, Drain drain,
              void* context, ToJs toJs)
      : env_(env), socket_(std::move(socket)), drain_(drain), context_(context), toJs_(toJs) {
    wake_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_.valid()) throw MakeError(env, SysError{errno, "eventfd", name});
    function_ = Napi::ThreadSafeFunction::New(env, callback, name, 0, 1);
    thread_ = std::thread([this] { Loop(); });
    // Registered after the ThreadSafeFunction's own hook, so it runs before it.
    napi_add_env_cleanup_hook(env_, OnEnvCleanup, this);
  }

  ~EventReader() { Stop(); }
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  // JS thread. Events already queued are dropped, not delivered after close().
  void Stop() {
    if (stopped_) return;
    Join();
    napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
    function_.Release();
  }

  bool stopped() const { return stopped_; }

 private:
  void Join() {
    stopped_ = true;
    *closed_ = true;
    uint64_t one = 1;
    ssize_t written = write(wake_.get(), &one, sizeof one);
    (void)written;  // the eventfd cannot be full: it is written once
    if (thread_.joinable()) thread_.join();
    // Now, not when JS garbage-collects the handle; in the background because
    // closing a packet socket waits for an RCU grace period.
    CloseLater(std::move(socket_));
    wake_.Reset();
  }

  static void OnEnvCleanup(void* self) {
    auto* reader = static_cast<EventReader*>(self);
    // The environment is going away and releases the function itself.
    if (!reader->stopped_) reader->Join();
  }

  void Loop() {
    std::vector<Event> events;
    for (;;) {
      pollfd fds[2] = {{socket_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      if (fds[0].revents == 0) continue;
      events.clear();
      bool keepReading = drain_(context_, socket_.get(), events);
      for (Event& event : events) Deliver(std::move(event));
      if (!keepReading) return;
    }
  }

  void Deliver(Event event) {
    auto shared = std::make_shared<Event>(std::move(event));
    std::shared_ptr<std::atomic<bool>> closed = closed_;
    ToJs toJs = toJs_;
    // Unbounded queue: NonBlockingCall never waits for the JS thread, so
    // Stop() can always join. Flood protection is the caller's BPF filter.
    function_.NonBlockingCall([closed, shared, toJs](Napi::Env env, Napi::Function callback) {
      if (*closed) return;
      callback.Call({toJs(env, *shared)});
    });
  }

  napi_env env_;
  Fd socket_;
  Fd wake_;
  Drain drain_;
  void* context_;
  ToJs toJs_;
  Napi::ThreadSafeFunction function_;
  std::thread thread_;
  bool stopped_ = false;
  std::shared_ptr<std::atomic<bool>> closed_ = std::make_shared<std::atomic<bool>>(false);
};
