/* spin31 SECONDS: waits for a line on stdin (or its end), then burns SECONDS of its own
 * CPU time, 3/4 of it in er_hot_three and 1/4 in er_cold_one (the tests' and bench's
 * profile workload), prints the CPU time it used and the rounds it made, and waits for its
 * stdin to close, so a tracer stopped meanwhile finds it alive (its mappings are how user
 * addresses are named).
 *
 * A round calls er_hot_three three times and er_cold_one once, each doing the same work,
 * so the split holds whatever the CPU's speed. Where the kernel has no IRQ_TIME_ACCOUNTING
 * (this machine's 6.18) the sampling interrupts that hit it are part of its CPU time, so
 * rounds per CPU second is what a profiler costs it (bench/profile_bench.py). Built with
 * -O0 -fno-omit-frame-pointer: the functions stay out of line and user stacks can be
 * walked by their frame pointers. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WORK 200000

static double cpu_seconds(void) {
    struct timespec c;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
    return c.tv_sec + c.tv_nsec / 1e9;
}

/* The same loop in each: a sample lands in the function itself (the innermost frame). */
#define SPIN(x) for (volatile int i = 0; i < WORK; i++) x += i

__attribute__((noinline)) unsigned long er_hot_three(unsigned long x) { SPIN(x); return x; }

__attribute__((noinline)) unsigned long er_cold_one(unsigned long x) { SPIN(x); return x; }

int main(int argc, char **argv) {
    double until = argc > 1 ? atof(argv[1]) : 1.0;
    int c;
    while ((c = getchar()) != EOF && c != '\n') /* go: the tracers know its pid by now */
        ;
    unsigned long x = 0, rounds = 0;
    unsigned int seed = 1;
    while (cpu_seconds() < until) {
        /* The cold call at a random place in its round: a fixed order would lock onto the
         * sampling clock's phase, and runs of samples would all land in one function. */
        seed = seed * 1103515245u + 12345u;
        int cold = (seed >> 16) % 4;
        for (int k = 0; k < 4; k++)
            x = k == cold ? er_cold_one(x) : er_hot_three(x);
        rounds++;
    }
    printf("%.3f %lu\n", cpu_seconds(), rounds);
    fflush(stdout);
    while (getchar() != EOF) /* alive until stdin closes: its maps can be read */
        ;
    return 0;
}
