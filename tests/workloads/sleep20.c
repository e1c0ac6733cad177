/* sleep20 [N [MS]]: sleeps N times (default 20) MS milliseconds (default 50) inside
 * er_nap, a function of known name, prints the total it asked for in microseconds, then
 * waits for its stdin to close, alive while tracers dump (its mappings are how user
 * addresses are named): the offcputime workload.
 *
 * er_nap makes the nanosleep system call itself: through libc's nanosleep (built without
 * frame pointers) a frame-pointer walk starts in libc and goes on from er_nap's saved frame,
 * so er_nap, the caller of that libc function, is skipped (bpftrace's ustack shows
 * clock_nanosleep, main). Built with -O0 -fno-omit-frame-pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

__attribute__((noinline)) void er_nap(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(SYS_nanosleep), "D"(&t), "S"(0L)
                     : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_nanosleep;
    register long x0 __asm__("x0") = (long)&t;
    register long x1 __asm__("x1") = 0;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1) : "memory");
#else
#error "er_nap: x86_64 or aarch64"
#endif
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20, ms = argc > 2 ? atol(argv[2]) : 50;
    for (long i = 0; i < n; i++)
        er_nap(ms);
    printf("%ld\n", n * ms * 1000);
    fflush(stdout);
    while (getchar() != EOF) /* alive until stdin closes */
        ;
    return 0;
}
