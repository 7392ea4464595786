#include "priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace swarmlens {

bool set_thread_nice(int nice) {
  if (nice == 0) return true;
  // On Linux a nice value belongs to a thread: setpriority on the thread id lowers this one only.
  return setpriority(PRIO_PROCESS, id_t(syscall(SYS_gettid)), nice) == 0;
}

}  // namespace swarmlens
