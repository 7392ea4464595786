// Thread priority: the idle policy's training thread and the broker's evaluator run below the
// work that must not wait for them.
#pragma once

namespace swarmlens {

// Lowers the calling thread's priority to `nice` (setpriority on its thread id; 0 = leave it).
// False on failure.
bool set_thread_nice(int nice);

}  // namespace swarmlens
