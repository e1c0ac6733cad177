/* stacks10k: makes exactly 10,000 distinct user stacks, each once: every number 0..9999
 * is a path of four calls through ten functions (its decimal digits), and the innermost
 * makes a getppid system call, which the bench's tracers count by stack. Then it prints
 * "done" and waits for its stdin to close, alive while the tracers symbolize.
 *
 * The system call is made in place: through libc's syscall() (no frame pointer) a
 * frame-pointer walk would skip its caller, and paths differing in their last step would
 * be one stack. Built with -O0 -fno-omit-frame-pointer. */
#include <stdio.h>
#include <sys/syscall.h>

typedef void step(int path, int level);
static step *const steps[10];

static void next(int path, int level) {
    if (level == 0) {
#if defined(__x86_64__)
        long ret;
        __asm__ volatile("syscall" : "=a"(ret) : "a"(SYS_getppid) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
        register long x8 __asm__("x8") = SYS_getppid, x0 __asm__("x0");
        __asm__ volatile("svc 0" : "=r"(x0) : "r"(x8) : "memory");
#else
#error "stacks10k: x86_64 or aarch64"
#endif
        return;
    }
    int digit = path;
    for (int i = 1; i < level; i++)
        digit /= 10;
    steps[digit % 10](path, level - 1);
}

/* Ten functions, each its own frame between two of next()'s: a stack names the four steps
 * of its path. */
#define STEP(n) __attribute__((noinline)) void er_step##n(int path, int level) { next(path, level); }
STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7) STEP(8) STEP(9)

static step *const steps[10] = {er_step0, er_step1, er_step2, er_step3, er_step4,
                                er_step5, er_step6, er_step7, er_step8, er_step9};

int main(void) {
    for (int path = 0; path < 10000; path++)
        next(path, 4);
    printf("done\n");
    fflush(stdout);
    while (getchar() != EOF)
        ;
    return 0;
}
