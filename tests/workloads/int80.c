/* 32-bit syscalls from a 64-bit program (int $0x80: the ia32 table, where 3 is read while
 * 3 is close in x86_64's), beside 64-bit ones, after a line on stdin: 7 ia32 read(-1),
 * then 3 close(-1) and 2 getppid() of x86_64. A probe on close must count 3, not 10. */
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(void)
{
    char line[16];
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    for (int i = 0; i < 7; i++) {
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(3L), "b"(-1L), "c"(0L), "d"(0L)
                         : "memory");
        if (ret != -9)  /* -EBADF: the ia32 read ran */
            return 2;
    }
    for (int i = 0; i < 3; i++)
        syscall(SYS_close, -1);
    for (int i = 0; i < 2; i++)
        syscall(SYS_getppid);
    return 0;
}
