#pragma once
// Test-only access to a Ring's internals, to make crash tests deterministic: hold the ring's
// mutex while a test kills the process, or die in the middle of a commit. Not for production
// code.

#include <functional>

#include "ipc/ring.hpp"

namespace azflow::ipc {

/// Hooks into Ring for tests (tests/ipc/). Each function uses the ring's real code paths.
struct RingTestAccess {
  /// Locks the ring's mutex (recovering it if its owner died), calls `while_locked`, unlocks.
  static void with_lock_held(Ring& ring, const std::function<void()>& while_locked);
  /// Starts committing `slot` under the mutex: builds and arms the intent record, performs the
  /// first `stores_done` of its stores (0..5; -1 = die before arming it), then SIGKILLs the
  /// calling process while holding the mutex. Never returns.
  [[noreturn]] static void die_during_commit(WriteSlot& slot, int stores_done);
};

}  // namespace azflow::ipc
