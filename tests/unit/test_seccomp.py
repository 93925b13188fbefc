"""sandbox.seccomp: what a child under the filter can and cannot do, checked in real children.

Each probe runs in a forked child that sets no-new-privs and installs the compiled program,
exactly as a job's process does, then reports a number through its exit status: an errno,
0 for success, or (as the parent sees it) minus the signal that killed it. Every refusal has
a control run without the filter, so that no test passes because the host refuses the call
anyway.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import socket
import subprocess
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from fulmen.sandbox import libc, seccomp

_NUMBERS = {
    "x86_64": {
        "ioctl": 16,
        "clone": 56,
        "ptrace": 101,
        "mount": 165,
        "keyctl": 250,
        "unshare": 272,
        "perf_event_open": 298,
        "setns": 308,
        "bpf": 321,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "clone3": 435,
    },
    "aarch64": {
        "ioctl": 29,
        "mount": 40,
        "unshare": 97,
        "ptrace": 117,
        "keyctl": 219,
        "clone": 220,
        "perf_event_open": 241,
        "setns": 268,
        "bpf": 280,
        "userfaultfd": 282,
        "io_uring_setup": 425,
        "clone3": 435,
    },
}
NR = _NUMBERS.get(platform.machine(), {})

pytestmark = [
    pytest.mark.skipif(not NR, reason=f"no syscall table for {platform.machine()}"),
    pytest.mark.skipif(not seccomp.available(), reason="libseccomp or seccomp filters missing"),
]

CLONE_NEWUSER = 0x10000000
TIOCSTI = 0x5412
X32_SYSCALL_BIT = 0x40000000
CHILD_FAILED = 255
GOT_A_CHILD = 254

Probe = Callable[[], int]


@pytest.fixture(scope="module")
def program() -> bytes:
    return seccomp.compile_filter()


def in_child(program: bytes | None, probe: Probe) -> int:
    """Run ``probe`` in a forked child, under ``program`` unless it is None.

    Returns what ``probe`` returned (it must fit an exit status), or minus the signal that
    killed the child. A probe that raises prints its traceback and gives ``CHILD_FAILED``.
    """
    pid = os.fork()
    if pid == 0:
        status = CHILD_FAILED
        try:
            if program is not None:
                libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
                seccomp.install(program)
            status = probe()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def errno_of(call: Callable[[], object]) -> int:
    try:
        call()
    except OSError as exc:
        return exc.errno or CHILD_FAILED
    return 0


def raw(name: str, *args: int) -> Probe:
    return lambda: errno_of(lambda: libc.syscall(NR[name], *args))


def test_the_program_is_a_whole_number_of_sock_filter_instructions(program: bytes) -> None:
    assert program
    assert len(program) % 8 == 0
    assert len(program) // 8 <= 4096


def test_a_user_namespace_is_possible_without_the_filter() -> None:
    assert in_child(None, raw("unshare", CLONE_NEWUSER)) == 0


def test_the_filter_refuses_a_user_namespace(program: bytes) -> None:
    assert in_child(program, raw("unshare", CLONE_NEWUSER)) == errno.EPERM


# (name, args, the errno the filter answers with). The arguments are harmless when the
# kernel, not the filter, answers: null pointers, or calls that change nothing that matters
# in a child about to exit.
REFUSED = [
    ("setns", (-1, 0), errno.EPERM),
    ("ptrace", (0, 0, 0, 0), errno.EPERM),  # PTRACE_TRACEME
    ("mount", (0, 0, 0, 0, 0), errno.EPERM),
    ("keyctl", (0, -3, 0), errno.EPERM),  # KEYCTL_GET_KEYRING_ID of the session keyring
    ("bpf", (5, 0, 0), errno.EPERM),  # BPF_PROG_LOAD
    ("perf_event_open", (0, 0, -1, -1, 0), errno.EPERM),
    ("io_uring_setup", (1, 0), errno.EPERM),
    ("userfaultfd", (0,), errno.EPERM),
    ("clone3", (0, 0), errno.ENOSYS),
]


@pytest.mark.parametrize(("name", "args", "answer"), REFUSED, ids=[r[0] for r in REFUSED])
def test_the_filter_refuses(program: bytes, name: str, args: tuple[int, ...], answer: int) -> None:
    assert in_child(program, raw(name, *args)) == answer


@pytest.mark.parametrize(("name", "args", "answer"), REFUSED, ids=[r[0] for r in REFUSED])
def test_without_the_filter_the_kernel_answers_otherwise(
    name: str, args: tuple[int, ...], answer: int
) -> None:
    assert in_child(None, raw(name, *args)) not in (answer, CHILD_FAILED)


def clone_with(flags: int) -> Probe:
    """A raw ``clone(flags | SIGCHLD)``; a child it makes exits at once, and counts as a leak."""

    def probe() -> int:
        try:
            pid = libc.syscall(NR["clone"], flags | signal.SIGCHLD, 0, 0, 0, 0)
        except OSError as exc:
            return exc.errno or CHILD_FAILED
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return GOT_A_CHILD

    return probe


@pytest.mark.parametrize(
    "flag",
    [0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000],
    ids=["NEWTIME", "NEWNS", "NEWCGROUP", "NEWUTS", "NEWIPC", "NEWUSER", "NEWPID", "NEWNET"],
)
def test_clone_into_a_new_namespace_is_refused(program: bytes, flag: int) -> None:
    assert in_child(program, clone_with(flag)) == errno.EPERM


def test_clone_without_namespace_flags_still_works(program: bytes) -> None:
    assert in_child(program, clone_with(0)) == GOT_A_CHILD


def test_fork_and_threads_still_work(program: bytes) -> None:
    # Thread creation goes through clone3 first; it works only if glibc falls back to clone.
    def probe() -> int:
        results: list[int] = []
        thread = threading.Thread(target=lambda: results.append(6))
        thread.start()
        thread.join()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        return results[0] * 10 + os.waitstatus_to_exitcode(status)

    assert in_child(program, probe) == 67


def test_a_subprocess_still_runs(program: bytes) -> None:
    assert in_child(program, lambda: subprocess.run(["/bin/true"], check=False).returncode) == 0


def test_file_io_still_works(program: bytes, tmp_path: Path) -> None:
    def probe() -> int:
        path = tmp_path / "data"
        path.write_bytes(b"fulmen")
        return 0 if path.read_bytes() == b"fulmen" else 1

    assert in_child(program, probe) == 0


def test_a_socket_reaches_the_network_stack(program: bytes) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    # Nobody listens on the port now: the kernel, not the filter, must answer.

    def probe() -> int:
        with socket.socket() as sock:
            return errno_of(lambda: sock.connect(("127.0.0.1", port)))

    assert in_child(program, probe) == errno.ECONNREFUSED


def test_the_child_reports_seccomp_filter_mode(program: bytes) -> None:
    def probe() -> int:
        return 0 if "Seccomp:\t2\n" in Path("/proc/self/status").read_text() else 1

    assert in_child(program, probe) == 0


def inject_into_a_terminal(request: int) -> Probe:
    """``ioctl(pty, request, "x")``, raw, so that the request's high bits reach the kernel."""

    def probe() -> int:
        _, terminal = os.openpty()
        byte = ctypes.c_char(b"x")
        return errno_of(lambda: libc.syscall(NR["ioctl"], terminal, request, ctypes.byref(byte)))

    return probe


# The kernel reads the request as 32 bits, so 0x1_0000_5412 is TIOCSTI to it too.
TERMINAL_INJECTIONS = [TIOCSTI, (1 << 32) | TIOCSTI]


@pytest.mark.parametrize("request_", TERMINAL_INJECTIONS, ids=["TIOCSTI", "TIOCSTI|1<<32"])
def test_terminal_injection_is_refused(program: bytes, request_: int) -> None:
    assert in_child(program, inject_into_a_terminal(request_)) == errno.EPERM


@pytest.mark.parametrize("request_", TERMINAL_INJECTIONS, ids=["TIOCSTI", "TIOCSTI|1<<32"])
def test_terminal_injection_works_without_the_filter_for_root(request_: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("TIOCSTI on a terminal that is not ours needs CAP_SYS_ADMIN")
    assert in_child(None, inject_into_a_terminal(request_)) == 0


def test_other_terminal_ioctls_still_work(program: bytes) -> None:
    def probe() -> int:
        _, terminal = os.openpty()
        return os.get_terminal_size(terminal).columns

    assert in_child(program, probe) == in_child(None, probe)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 is an x86_64 ABI")
def test_an_x32_syscall_kills_the_whole_process(program: bytes) -> None:
    # x32 numbers are the x86_64 ones with bit 30 set; a filter that compared numbers only
    # would let x32's unshare through on a kernel built with CONFIG_X86_X32_ABI. The call is
    # made from a second thread: killing only that thread would leave the probe to return.
    def x32_unshare() -> int:
        return errno_of(lambda: libc.syscall(X32_SYSCALL_BIT | NR["unshare"], CLONE_NEWUSER))

    def from_a_thread() -> int:
        thread = threading.Thread(target=x32_unshare)
        thread.start()
        thread.join(timeout=2)
        return 0

    assert in_child(program, from_a_thread) == -signal.SIGSYS
    # Without the filter: success where the kernel has x32, ENOSYS where it does not.
    assert in_child(None, x32_unshare) in (0, errno.ENOSYS)


def test_install_rejects_what_is_not_a_program() -> None:
    with pytest.raises(ValueError, match="not a seccomp program"):
        seccomp.install(b"")
    with pytest.raises(ValueError, match="not a seccomp program"):
        seccomp.install(b"\0" * 12)


def test_install_reports_what_the_kernel_refused() -> None:
    # One BPF_LD instruction and no BPF_RET: the kernel's checker refuses it.
    def probe() -> int:
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
        try:
            seccomp.install(b"\0" * 8)
        except OSError as exc:
            return exc.errno if "seccomp filter" in str(exc) and exc.errno else CHILD_FAILED
        return 0

    assert in_child(None, probe) == errno.EINVAL
