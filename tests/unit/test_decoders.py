from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner.kinds.decoders import DecodeError, Decoders, UnknownDecoder, safe_text
from runner.kinds.decoders import uid as uid_module
from runner.kinds.decoders.open_flags import FLAGS
from runner.support.enums import shipped_table
from runner.support.syscalls import host_arch

X86 = Decoders.for_arch("x86_64", kallsyms=Path("/nonexistent"))
ARM = Decoders.for_arch("aarch64", kallsyms=Path("/nonexistent"))


def text(name: str, raw, registry: Decoders = X86) -> str:
    return registry.get(name).text(raw)


def test_unknown_decoder_is_loud_and_lists_the_known():
    with pytest.raises(UnknownDecoder) as info:
        X86.get("errnos")
    assert str(info.value) == (
        "unknown decoder 'errnos'; known: cgroup, container, errno, inet, ip, ipv4, ipv6, ksym, "
        "open_flags, port_be, signal, syscall, syscall_ret, tcp_state, uid, and 'enum NAME' (a "
        "kernel enum)"
    )


def test_unknown_arch():
    with pytest.raises(KeyError):
        Decoders.for_arch("mips")


def test_wrong_input_type_is_loud():
    with pytest.raises(DecodeError, match="decoder 'errno' takes int, got str '2'"):
        text("errno", "2")
    with pytest.raises(DecodeError, match="decoder 'syscall' takes int, got bool"):
        text("syscall", True)
    with pytest.raises(DecodeError, match="decoder 'ipv4' takes 4 bytes, got 5"):
        text("ipv4", b"\x7f\x00\x00\x01\x00")
    with pytest.raises(DecodeError, match="decoder 'inet' takes 4 or 16 bytes, got 3"):
        text("inet", b"abc")
    with pytest.raises(DecodeError, match="not a 16-bit port"):
        text("port_be", 70000)


def test_syscall_names_per_arch():
    assert text("syscall", 39) == "getpid"
    assert text("syscall", 172, ARM) == "getpid"
    assert text("syscall", 99999) == "99999"


def test_errno_either_sign_and_kernel_spellings():
    assert [text("errno", v) for v in (-2, 2, -11, -35, -95, -512, 0, -4000)] == [
        "ENOENT",
        "ENOENT",
        "EAGAIN",
        "EDEADLK",
        "EOPNOTSUPP",
        "ERESTARTSYS",
        "0",
        "-4000",
    ]


def test_syscall_return_value():
    assert [text("syscall_ret", v) for v in (-13, 0, 4096)] == ["EACCES", "0", "4096"]


def test_json_keeps_the_raw_number_where_both_matter():
    assert X86.get("errno").json_fields("ret", -2) == {"ret": -2, "ret_name": "ENOENT"}
    assert X86.get("syscall").json_fields("nr", 0) == {"nr": 0, "nr_name": "read"}
    # An address or a port replaces its raw form: the raw one means nothing to a reader.
    assert X86.get("ipv4").json_fields("daddr", b"\x7f\x00\x00\x01") == {"daddr": "127.0.0.1"}
    assert X86.get("port_be").json_fields("dport", 0x5000) == {"dport": 80}
    assert X86.get("tcp_state").json_fields("newstate", 1) == {"newstate": "TCP_ESTABLISHED"}


def test_signals():
    got = [text("signal", n) for n in (9, 15, 17, 31, 32, 34, 64, 0, 65)]
    assert got == [
        "SIGKILL",
        "SIGTERM",
        "SIGCHLD",
        "SIGSYS",
        "SIGRT_0",
        "SIGRT_2",
        "SIGRT_32",
        "0",
        "65",
    ]


def test_addresses():
    assert text("ipv4", b"\x7f\x00\x00\x01") == "127.0.0.1"
    # A __be32 loaded as a u32 on a little-endian host.
    assert text("ipv4", 0x0100007F) == "127.0.0.1"
    assert text("ipv6", bytes(15) + b"\x01") == "::1"
    mapped = bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 7])
    assert text("inet", mapped) == "::ffff:10.0.0.7"
    assert text("inet", bytearray([192, 168, 1, 2])) == "192.168.1.2"
    assert text("inet", memoryview(bytes(16))) == "::"


def test_port_from_network_order():
    assert [X86.get("port_be")(v) for v in (0x5000, 0xBB01, 0)] == [80, 443, 0]


def test_tcp_states():
    assert text("tcp_state", 1) == "TCP_ESTABLISHED"
    assert text("tcp_state", 10) == "TCP_LISTEN"
    assert text("tcp_state", 99) == "99"


def test_tcp_states_agree_with_the_running_kernels_tracepoint():
    fmt = Path("/sys/kernel/tracing/events/sock/inet_sock_set_state/format")
    try:
        content = fmt.read_text()
    except OSError:
        pytest.skip("tracefs not readable here")
    table = re.search(r"__print_symbolic\(REC->newstate, (.*?)\)", content)
    assert table
    pairs = re.findall(r'\{ (\d+), "(\w+)" \}', table.group(1))
    states = shipped_table().names_of("tcp_state")
    assert {int(n): name for n, name in pairs} == {
        n: name for n, name in states.items() if n <= len(pairs)
    }


def test_open_flags():
    assert text("open_flags", 0) == "O_RDONLY"
    assert text("open_flags", os.O_WRONLY | 0o100 | 0o1000) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert text("open_flags", 0o2000002) == "O_RDWR|O_CLOEXEC"
    assert text("open_flags", 0o4010000) == "O_RDONLY|O_SYNC"
    assert text("open_flags", 0o20200002) == "O_RDWR|O_TMPFILE"
    assert text("open_flags", 0o200000) == "O_RDONLY|O_DIRECTORY"
    assert text("open_flags", 0o40000, ARM) == "O_RDONLY|O_DIRECTORY"
    assert text("open_flags", 0o40000) == "O_RDONLY|O_DIRECT"
    assert text("open_flags", 3 | 0o100000000) == "0x3|0x1000000"
    assert text("open_flags", -1) == "-1"


def test_open_flag_values_agree_with_this_hosts_libc():
    arch = host_arch()
    if arch not in FLAGS:
        pytest.skip(f"no table for {arch}")
    table = FLAGS[arch]
    for name in (
        "O_CREAT",
        "O_EXCL",
        "O_TRUNC",
        "O_APPEND",
        "O_NONBLOCK",
        "O_DIRECTORY",
        "O_NOFOLLOW",
        "O_CLOEXEC",
        "O_DIRECT",
        "O_NOATIME",
        "O_PATH",
        "O_DSYNC",
    ):
        assert table[name] == getattr(os, name), name
    assert table["__O_SYNC"] | table["O_DSYNC"] == os.O_SYNC
    assert table["__O_TMPFILE"] | table["O_DIRECTORY"] == os.O_TMPFILE


def test_ksym_from_a_kallsyms_file(tmp_path):
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text(
        "ffffffff81000000 T _stext\n"
        "ffffffff81000000 T _text\n"
        "ffffffff81001000 t do_thing\t[mod]\n"
        "ffffffff81002000 T last_one\n"
    )
    ksym = Decoders.for_arch("x86_64", kallsyms=kallsyms).get("ksym")
    assert ksym.text(0xFFFFFFFF81000000) == "_stext"
    assert ksym.text(0xFFFFFFFF81001010) == "do_thing+0x10"
    assert ksym.text(0xFFFFFFFF81002000) == "last_one"
    # Past the last symbol or before the first: no size to trust, so hex.
    assert ksym.text(0xFFFFFFFF81002001) == "0xffffffff81002001"
    assert ksym.text(0x1000) == "0x1000"
    # The same address in a signed 64-bit field.
    assert ksym.text(0xFFFFFFFF81000000 - (1 << 64)) == "_stext"
    assert ksym.json_fields("ip", 0xFFFFFFFF81001000) == {
        "ip": 0xFFFFFFFF81001000,
        "ip_name": "do_thing",
    }


def test_ksym_hex_when_addresses_are_hidden(tmp_path):
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("0000000000000000 T _stext\n0000000000000000 T do_thing\n")
    ksym = Decoders.for_arch("x86_64", kallsyms=kallsyms).get("ksym")
    assert ksym.text(0xFFFFFFFF81000000) == "0xffffffff81000000"
    assert X86.get("ksym").text(0xFFFFFFFF81000000) == "0xffffffff81000000"


def test_uid_names_are_escaped(monkeypatch):
    names = {0: "root", 1000: "evil\x1b[2Jname"}

    def getpwuid(uid):
        if uid not in names:
            raise KeyError(uid)
        return SimpleNamespace(pw_name=names[uid])

    monkeypatch.setattr(uid_module.pwd, "getpwuid", getpwuid)
    uid_module.user_name.cache_clear()
    try:
        assert text("uid", 0) == "root"
        assert text("uid", 1000) == "evil\\x1b[2Jname"
        assert text("uid", 4242) == "4242"
        assert X86.get("uid").json_fields("uid", 0) == {"uid": 0, "uid_name": "root"}
    finally:
        uid_module.user_name.cache_clear()


def test_safe_text():
    assert safe_text("plain ünïcode") == "plain ünïcode"
    assert safe_text("a\nb\tc\x7f\x9b") == "a\\x0ab\\x09c\\x7f\\x9b"
    assert safe_text("\u202eevil") == "\\u202eevil"
    assert safe_text("\U000e0001") == "\\U000e0001"
    assert safe_text("back\\slash") == "back\\slash"
    once = safe_text("evil\x1b[2J\u202e")
    assert safe_text(once) == once


@pytest.mark.parametrize("name", sorted(X86.names))
def test_every_decoder_has_doc_and_input_kind(name):
    decoder = X86.get(name)
    assert decoder.name == name
    assert decoder.doc
    assert decoder.accepts in ("int", "bytes", "int|bytes")
