"""Signal number -> SIGKILL-style name, as the kernel numbers them on x86_64 and arm64."""

from __future__ import annotations

from runner.kinds.decoders.base import Decoder

# asm-generic/signal.h and arch/x86/include/uapi/asm/signal.h agree on 1..31.
_STANDARD = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
]

KERNEL_SIGRTMIN = 32
KERNEL_SIGRTMAX = 64


def signal_name(number: int) -> str:
    if 1 <= number <= len(_STANDARD):
        return _STANDARD[number - 1]
    if KERNEL_SIGRTMIN <= number <= KERNEL_SIGRTMAX:
        # Counted from the kernel's SIGRTMIN (32), as strace does: glibc's SIGRTMIN is 34
        # (it keeps 32 and 33), so "SIGRTMIN+n" would mean different signals to different
        # readers.
        return f"SIGRT_{number - KERNEL_SIGRTMIN}"
    return str(number)


SIGNAL = Decoder(
    "signal",
    "int",
    signal_name,
    keep_raw=True,
    doc="signal number -> name (9 -> SIGKILL, 34 -> SIGRT_2); else the number",
)
