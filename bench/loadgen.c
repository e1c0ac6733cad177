/*
 * Load generator for bench/run: call getppid() at a steady rate, or as fast as it can.
 *
 *     loadgen RATE SECONDS     RATE calls per second (0: as fast as possible)
 *
 * Prints one line on stdout when done:  calls=N seconds=S rate=R cpu=C
 * where C is its own CPU time (user + system) in seconds: with a probe attached, the BPF
 * program runs inside the traced syscall, so C includes what the probe costs the workload.
 *
 * Pacing: the calls due by now are rate * elapsed; they are made in batches of at most
 * BATCH, and when the generator is ahead it sleeps until the next call is due (at least
 * 100 us, so it does not spin a core). So the offered load is steady at sub-millisecond
 * scale (bursts of rate * ~150 us), never one burst per second. The calls use
 * syscall(SYS_getppid) so no C library can answer them from a cache.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s RATE SECONDS   (RATE 0: as fast as possible)\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    if (rate < 0 || seconds <= 0) {
        fprintf(stderr, "loadgen: RATE must be >= 0 and SECONDS > 0\n");
        return 2;
    }
    uint64_t calls = 0;
    double start = now(), t = start, end = start + seconds;
    while (t < end) {
        uint64_t n = BATCH;
        if (rate > 0) {
            uint64_t due = (uint64_t)((t - start) * rate) + 1;
            if (due <= calls) {
                /* Ahead: sleep at least 100 us, so the generator does not spin a core. */
                double wait = (calls + 1) / rate - (t - start);
                struct timespec ts = {0, (long)((wait > 100e-6 ? wait : 100e-6) * 1e9)};
                nanosleep(&ts, NULL);
                t = now();
                continue;
            }
            if (due - calls < n)
                n = due - calls;
        }
        for (uint64_t i = 0; i < n; i++)
            syscall(SYS_getppid);
        calls += n;
        t = now();
    }
    double took = t - start;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
               + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("calls=%llu seconds=%.6f rate=%.0f cpu=%.6f\n", (unsigned long long)calls, took,
           calls / took, cpu);
    return 0;
}
