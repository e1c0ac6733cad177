/* forkstorm N CALLS: the workload of "100,000 short-lived processes through
 * syscount-process with the last one seen" (issue 24, tests/kernel/test_agg_weeks.py).
 *
 * Waits for a line on stdin, then forks N children, each of which makes one system call
 * (getpgid of a pid above any pid_max: it fails at once) and exits; at most WINDOW are
 * alive at a time. Once all are reaped it prints "forked N" and waits for another line,
 * then forks one last child that names itself er-last-child (prctl, counted under its old
 * name: a syscall enters before it renames), makes CALLS getpgid calls and exit_group:
 * CALLS + 1 system calls under (its pid, er-last-child), whatever the C library does
 * around a fork. It prints "last PID" once that child is reaped, and exits when stdin
 * ends. Raw syscall(2)s: no library call adds one. Fork without exec: fast. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAGIC 2125315823
#define WINDOW 64

static void wait_line(void) {
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: forkstorm N CALLS\n");
        return 2;
    }
    long n = atol(argv[1]), calls = atol(argv[2]), alive = 0;
    wait_line();
    for (long i = 0; i < n; i++) {
        if (alive == WINDOW) {
            if (wait(NULL) < 0) return 1;
            alive--;
        }
        pid_t p = fork();
        if (p < 0) return 1;
        if (p == 0) {
            syscall(SYS_getpgid, MAGIC);
            syscall(SYS_exit_group, 0);
        }
        alive++;
    }
    while (alive > 0 && wait(NULL) > 0) alive--;
    printf("forked %ld\n", n);
    fflush(stdout);
    wait_line();
    pid_t last = fork();
    if (last < 0) return 1;
    if (last == 0) {
        syscall(SYS_prctl, PR_SET_NAME, "er-last-child", 0, 0, 0);
        for (long c = 0; c < calls; c++) syscall(SYS_getpgid, MAGIC);
        syscall(SYS_exit_group, 0);
    }
    if (waitpid(last, NULL, 0) != last) return 1;
    printf("last %d\n", (int)last);
    fflush(stdout);
    wait_line();
    return 0;
}
