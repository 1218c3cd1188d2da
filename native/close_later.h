// Closing an AF_PACKET socket waits for an RCU grace period in the kernel
// (packet_release -> synchronize_net), 10-30 ms here. Callers that must not
// wait (the JS thread, a probe about to resolve) hand the fd over instead: it
// is closed on a short-lived background thread. Concurrent closes share grace
// periods, so they finish together; past kMaxPending in flight the caller
// closes synchronously, which bounds threads and open fds.
#pragma once

#include "fd.h"

void CloseLater(Fd fd);
