/* Preloaded before libfaketime in the skewed-clock tests.
 *
 * libfaketime 0.9.10 rewrites absolute clock_nanosleep deadlines as if they
 * were wall-clock times even when FAKETIME_DONT_FAKE_MONOTONIC=1 keeps the
 * monotonic clock real, so Python's time.sleep fails with EINVAL. A device
 * with a wrong wall clock still has a correct monotonic clock: pass every
 * sleep that is not on CLOCK_REALTIME straight to the kernel, and leave the
 * wall-clock ones to libfaketime.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*cns_fn)(clockid_t, int, const struct timespec *, struct timespec *);

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req, struct timespec *rem)
{
    if (clock_id != CLOCK_REALTIME) {
        /* The raw syscall returns -1/errno; clock_nanosleep returns the error number. */
        long rc = syscall(SYS_clock_nanosleep, clock_id, flags, req, rem);
        return rc == 0 ? 0 : errno;
    }
    cns_fn next = (cns_fn)dlsym(RTLD_NEXT, "clock_nanosleep");
    if (next == NULL)
        return ENOSYS;
    return next(clock_id, flags, req, rem);
}
