"""Spelling string reads and string comparisons in C.

Every read is bounded by the destination's size and done by a helper that checks the
address (bpf_probe_read_{user,kernel}_str stop at the NUL or at size - 1 bytes and always
write the NUL), so a spec can never make the program read out of bounds. A string that
filled its buffer may have been cut: ebpf-run then ends it with "..." so the truncation is
visible in the output (a string of exactly size - 1 bytes is shown that way too), cut where
a UTF-8 character starts. A read that failed is marked behind the NUL of the empty string
the helper leaves (0xff, then the errno): runtime/decode.py shows it as a failure.
Comparisons read into a small scratch buffer and compare byte by byte, unrolled and
without branches: the literal's length bounds the work, as the verifier wants.
"""

from __future__ import annotations

from typing import Any, Callable

from runner.model.expr import (
    CommStr,
    LocalChars,
    ParamIs,
    ParamStr,
    PtrStr,
    RecordChars,
    RecordDataLoc,
    StrCompare,
)

Spell = Callable[[Any], str]


def read_string(src: object, dest: str, size: int, spell: Spell, mark: bool = True) -> str:
    """Fill char[size] at `dest`; `mark`: end a string that filled it with "..." ."""
    if isinstance(src, CommStr):
        return f"bpf_get_current_comm({dest}, {min(size, 16)});"
    if isinstance(src, ParamStr):  # a print's string parameter: its literal's bytes
        return f"__builtin_memcpy({dest}, er_param_{src.name}, {min(size, src.size)});"
    if isinstance(src, RecordChars):
        n = min(size - 1, src.count)
        return (f"bpf_probe_read_kernel({dest}, {n}, (char *)ctx + {src.offset}); "
                f"({dest})[{n}] = 0;")
    if isinstance(src, LocalChars):
        n = min(size - 1, src.count)
        return (f"__builtin_memcpy({dest}, er_v_{src.name}.{src.field}, {n}); "
                f"({dest})[{n}] = 0;")
    if isinstance(src, RecordDataLoc):
        return _bounded(dest, size, "kernel", _data_loc(src), mark)
    assert isinstance(src, PtrStr)
    return _bounded(dest, size, src.space, f"(const void *)({spell(src.address)})", mark)


def _data_loc(src: RecordDataLoc) -> str:
    # __data_loc: the low 16 bits are the string's offset in the record (from the end of
    # the u32 itself for __rel_loc), the high 16 its length.
    base = f"{src.offset} + 4 + " if src.relative else ""
    return f"(const void *)((char *)ctx + {base}(*(u32 *)((char *)ctx + {src.offset}) & 0xffff))"


_STR_HELPER = {"user": "bpf_probe_read_user_str", "kernel": "bpf_probe_read_kernel_str"}


def _bounded(dest: str, size: int, space: str, address: str, marked: bool) -> str:
    helper = _STR_HELPER[space]
    if not marked:
        return f"{helper}({dest}, {size}, {address});"
    return (f"{{ long er_n = {helper}({dest}, {size}, {address});"
            f"{_truncated(dest, size)}{_failed(dest, size)} }}")


def _truncated(dest: str, size: int) -> str:
    """A string that filled char[size] ends with "...", cut at a UTF-8 character's start:
    a character the read cut (its lead byte announces more bytes than came before the
    dots) goes entirely, so the text never ends in a broken character."""
    if size < 4:
        return ""
    j = size - 4  # where the dots go when nothing is cut
    cases = []
    for k in (1, 2, 3):  # the cut character's bytes before j, when it has more after
        if j - k < 0:
            break
        lead = f"(u8)({dest})[{j - k}] >= {(0xc0, 0xe0, 0xf0)[k - 1]:#x}"
        tails = [f"((u8)({dest})[{i}] & 0xc0) == 0x80" for i in range(j - k + 1, j)]
        cases.append((" && ".join([*tails, lead]), _dots(dest, j - k, size)))
    body = "".join(f"if ({cond}) {{ {dots} }} else " for cond, dots in cases)
    return f" if (er_n == {size}) {{ {body}{{ {_dots(dest, j, size)} }} }}"


def _dots(dest: str, at: int, size: int) -> str:
    """"..." from `at`, then NULs to the end (hash keys compare every byte)."""
    dots = [f"({dest})[{i}] = 46;" for i in range(at, at + 3)]  # '.'
    return " ".join(dots + [f"({dest})[{i}] = 0;" for i in range(at + 3, size - 1)])


def _failed(dest: str, size: int) -> str:
    """A read that failed (the helper then zeroes the field) is marked behind the empty
    string's NUL: 0xff (never in UTF-8) and the errno, so user space shows the failure
    instead of an empty string. A read of an empty string clears that byte: the field
    may hold anything before the read."""
    if size < 3:
        return ""
    return (f" else if (er_n < 0) {{ ({dest})[1] = (char)0xff; ({dest})[2] = (char)-er_n; }}"
            f" else if (er_n == 1) {{ ({dest})[1] = 0; }}")


def param_is(e: ParamIs) -> str:
    """A string parameter equal to a literal: its bytes and its NUL, constants the compiler
    folds."""
    lit = f"er_param_{e.param.name}"
    tests = " && ".join(f"{lit}[{i}] == {b}" for i, b in enumerate(e.text.encode() + b"\0"))
    return f"({'!' if e.negate else ''}({tests}))"


def str_compare(e: StrCompare, spell: Spell) -> str:
    size = e.buffer_size
    read = read_string(e.source, "er_s", size, spell, mark=False)
    # Every byte's difference or-ed into er_d, equal when it is 0: code without branches.
    # With `==` joined by `&&`, LLVM turns groups of tests into diamonds whose results it
    # packs into bits; the verifier then walks 2^n paths and refuses the program with E2BIG
    # from about 16 bytes on (issue 24). A barrier after every 8 bytes keeps LLVM from
    # loading every byte first, which spills past the 512-byte stack on long literals.
    if isinstance(e.text, ParamStr):
        diffs = _param_diffs(e.text, e.prefix)
    else:
        data = e.text.encode()
        diffs = [f"((u8)er_s[{i}] ^ {b})" for i, b in enumerate(data)]
        if not e.prefix:
            diffs.append(f"(u8)er_s[{len(data)}]")
    steps = "".join(f" er_d |= {' | '.join(diffs[i:i + 8])}; {_BARRIER}"
                    for i in range(0, len(diffs), 8))
    neg = "!" if e.negate else ""
    return (f"({neg}({{ char er_s[{size}] = {{}}; {read} u64 er_d = 0;{steps} "
            "er_d == 0; }))")


def _param_diffs(p: ParamStr, prefix: bool) -> list[str]:
    """A string parameter's bytes are a constant literal (er_param_NAME, N bytes: the text
    then NULs), but its length is not known here: each byte's test is kept or dropped by a
    condition on the literal's own bytes, which clang folds away. `==` tests the text's
    bytes and its NUL (what follows the NUL of a record's char array may be anything); a
    prefix tests the text's bytes."""
    lit = f"er_param_{p.name}"
    out = []
    for i in range(p.size):
        diff = f"((u8)er_s[{i}] ^ (u8){lit}[{i}])"
        keep = f"{lit}[{i}]" if prefix else (f"{lit}[{i - 1}]" if i else "")
        out.append(f"({keep} ? {diff} : 0)" if keep else diff)
    return out


# Makes er_d a register value here, and no memory read moves across it.
_BARRIER = 'asm volatile("" : "+r"(er_d) :: "memory");'

