#include "close_later.h"

#include <atomic>
#include <memory>
#include <system_error>
#include <thread>

namespace {

constexpr int kMaxPending = 64;
std::atomic<int> pending{0};

}  // namespace

void CloseLater(Fd fd) {
  if (!fd.valid()) return;
  if (pending.fetch_add(1) >= kMaxPending) {
    pending.fetch_sub(1);
    fd.Reset();
    return;
  }
  try {
    std::thread([owned = std::make_shared<Fd>(std::move(fd))]() mutable {
      owned->Reset();
      pending.fetch_sub(1);
    }).detach();
  } catch (const std::system_error&) {
    // No thread available: close here. `fd` may already be moved into the
    // lambda's shared_ptr, which then closes it when destroyed.
    pending.fetch_sub(1);
  }
}
