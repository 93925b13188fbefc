"""A seccomp-BPF deny-list for the child: the system calls a job has no business making.

Landlock fences the filesystem and dropped capabilities fence privilege, but the kernel's
attack surface is reached through system calls that need neither: user namespaces (and,
inside one, mount and every "namespaced" capability), io_uring, BPF, keyrings, perf,
userfaultfd, ptrace of a sibling job running as the same uid. A seccomp filter refuses
those before the kernel looks at their arguments. The default action is ALLOW: Python and
the libraries jobs import make hundreds of different calls, and an allow-list would break
on the first new one; what we deny is a short, reviewable list of calls no job needs.

The filter is built with libseccomp (``libseccomp.so.2``, Debian's libseccomp2) through
ctypes: it knows each architecture's syscall numbers and emits the architecture check, the
x32 check and the argument comparisons, all of which are easy to get subtly wrong by hand.
It is used only in the zygote: :func:`compile_filter` runs once and returns the raw
``struct sock_filter`` array, and each forked child hands those bytes to the kernel with one
``prctl`` in :func:`install`, so the run's critical path contains no libseccomp call.

What the filter does, on the native architecture (see :data:`DENIED` for the list):

- every call in :data:`DENIED` fails with EPERM;
- ``clone3`` fails with ENOSYS, so glibc (threads, ``posix_spawn``) and Python fall back to
  ``clone``, whose flags are a register the filter can read (``clone3``'s are behind a
  pointer, which seccomp cannot follow);
- ``clone`` fails with EPERM when its flags carry any ``CLONE_NEW*`` bit;
- ``ioctl(TIOCSTI)`` and ``ioctl(TIOCLINUX)`` fail with EPERM: they push input into a
  terminal, a classic escape when a terminal is shared with the host;
- ``socket`` and ``socketpair`` of any family but Unix, IPv4, IPv6 and netlink fail with
  EAFNOSUPPORT (AF_VSOCK is not namespaced: it reaches the hypervisor and the host's vsock
  ports whatever the network namespace), and a netlink socket for socket diagnostics with
  EPROTONOSUPPORT (it lists the sockets of the namespace the runs of one worker share);
- ``fallocate`` with ``FALLOC_FL_KEEP_SIZE`` fails with EPERM: it reserves disk past the
  file-size rlimit, and a run's output file lies on the host's disk;
- a call made through another ABI (i386's ``int 0x80``, x32's ``nr | 0x40000000``) kills
  the process: their numbers mean different calls, so they would slip past every rule.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from typing import Final

from fulmen.sandbox import libc

__all__ = ["DENIED", "available", "compile_filter", "install"]

DENIED: Final[tuple[str, ...]] = (
    # Reading or steering other processes: another job under the same uid, or the worker.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # Namespaces and mounts: the doorway to capabilities inside a new user namespace, and
    # the bulk of the kernel's recent privilege-escalation bugs.
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # Large, bug-prone kernel interfaces no job needs.
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "fanotify_init",
    # Whole-machine state: the kernel, modules, clocks, swap, accounting, the console.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "vhangup",
    # Escapes from path-based confinement: open a file by its handle, not its name.
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    # Hardware and obsolete interfaces (several exist only on some architectures).
    "iopl",
    "ioperm",
    "vm86",
    "vm86old",
    "uselib",
    "nfsservctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "afs_syscall",
    "ustat",
    "sysfs",
    "_sysctl",
)
"""The calls refused outright with EPERM.

A name that does not exist on the running architecture (``vm86`` on x86_64, most of the
obsolete ones on aarch64) is skipped: there is no number to refuse.
"""

# <linux/sched.h>: every flag that makes clone() create a namespace. CLONE_NEWTIME (0x80)
# lies inside clone()'s exit-signal byte, so clone() cannot actually ask for it; refusing
# the bit costs nothing, since no signal number reaches 128.
_CLONE_NEW_FLAGS: Final = (
    0x00000080,  # CLONE_NEWTIME
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
# <asm-generic/ioctls.h>, the same on x86_64 and aarch64.
_TIOCSTI: Final = 0x5412
_TIOCLINUX: Final = 0x541C
_AF_NETLINK: Final = 16
_SOCKET_FAMILIES: Final = frozenset({1, 2, 10, _AF_NETLINK})  # AF_UNIX, AF_INET, AF_INET6
_AF_MAX: Final = 64  # above every family Linux defines (46 in 6.x): denied as a range
_NETLINK_SOCK_DIAG: Final = 4
_FALLOC_FL_KEEP_SIZE: Final = 1

# <seccomp.h>
_ACT_ALLOW: Final = 0x7FFF0000
_ACT_KILL_PROCESS: Final = 0x80000000
_FLTATR_ACT_BADARCH: Final = 2
_FLTATR_CTL_OPTIMIZE: Final = 8
_CMP_GE: Final = 5
_CMP_MASKED_EQ: Final = 7

# <linux/prctl.h>, <linux/seccomp.h>
_PR_GET_SECCOMP: Final = 21
_PR_SET_SECCOMP: Final = 22
_SECCOMP_MODE_FILTER: Final = 2
_BPF_MAXINSNS: Final = 4096
_SOCK_FILTER_SIZE: Final = 8  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k;}

_LIBRARY: Final = "libseccomp.so.2"


def _act_errno(err: int) -> int:
    """``SCMP_ACT_ERRNO(err)``: fail the call with ``err`` instead of running it."""
    return 0x00050000 | (err & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``: for MASKED_EQ, ``(arg & datum_a) == datum_b``."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    """``struct sock_fprog``, the argument of ``PR_SET_SECCOMP``.

    ``filter`` is declared ``c_char_p`` so that a ``bytes`` object is passed by address,
    without a copy; the kernel reads ``len * 8`` bytes from it and never writes.
    """

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


@functools.cache
def _library() -> ctypes.CDLL:
    """libseccomp with the prototypes we call, loaded on first use (in the zygote only)."""
    try:
        lib = ctypes.CDLL(_LIBRARY)
    except OSError as exc:
        raise OSError(
            errno.ENOENT,
            f"cannot load {_LIBRARY} (on Debian, install the libseccomp2 package): {exc}",
        ) from exc
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    # The _array form: the variadic seccomp_rule_add passes structs by value through "...",
    # which ctypes cannot express portably.
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    return lib


def _check(result: int, what: str) -> None:
    """libseccomp reports failure as a negative errno in the return value, not in ``errno``."""
    if result < 0:
        raise OSError(-result, f"{what}: {os.strerror(-result)}")


def available() -> bool:
    """Whether :func:`compile_filter` and :func:`install` can work here.

    libseccomp must load, and the kernel must accept filter mode. ``PR_GET_SECCOMP`` alone
    only shows that seccomp exists (strict mode would do); a ``PR_SET_SECCOMP`` with a null
    program is the standard probe for filters: EFAULT means the kernel got as far as reading
    the program, EINVAL that it has no filter mode. It changes nothing either way.
    """
    try:
        _library()
        libc.prctl(_PR_GET_SECCOMP)
        libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, 0)
    except OSError as exc:
        return exc.errno == errno.EFAULT
    return False  # not reachable: the kernel cannot accept a null program


def compile_filter() -> bytes:
    """Build the policy with libseccomp and return it as a ``struct sock_filter`` array.

    Runs in the zygote, once; the result is for :func:`install` (in this process or any
    process forked from it, on the same architecture).

    Raises:
        OSError: libseccomp is missing (ENOENT) or refused a rule (its errno).
    """
    lib = _library()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        # libseccomp's default, SCMP_ACT_KILL, ends only the calling thread; a job with its
        # other threads still running is not what a foreign-ABI call should leave behind.
        _check(lib.seccomp_attr_set(ctx, _FLTATR_ACT_BADARCH, _ACT_KILL_PROCESS), "badarch")
        # A binary search on the syscall number instead of a linear chain halves the cost
        # of install() (measured: ~50 µs in prctl instead of ~95). Since Linux 5.11 the
        # kernel evaluates a new filter for every syscall number as it attaches it, to cache
        # the ones it always allows, so the length of the path to ALLOW is paid ~450 times.
        # libseccomp < 2.5 lacks the attribute; its linear filter is equivalent, so a
        # failure here is ignored.
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)

        def rule(action: int, name: str, *conditions: _ArgCmp) -> None:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # not a call on this architecture (or a pseudo-number for one)
                return
            array = (_ArgCmp * len(conditions))(*conditions)
            _check(lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array), name)

        eperm = _act_errno(errno.EPERM)
        for name in DENIED:
            rule(eperm, name)
        rule(_act_errno(errno.ENOSYS), "clone3")
        # Rules for one call are OR'd, the conditions within a rule AND'd: one rule per
        # flag is "any of these bits". The flags are clone()'s first argument on x86_64 and
        # aarch64 (s390 swaps the first two, and is not supported here).
        for flag in _CLONE_NEW_FLAGS:
            rule(eperm, "clone", _ArgCmp(0, _CMP_MASKED_EQ, flag, flag))
        # The kernel takes ioctl's request as an unsigned int, so only the low 32 bits may
        # be compared: an EQ on the full 64-bit register is bypassed by setting a high bit
        # (CVE-2019-10063, in Flatpak's filter).
        for request in (_TIOCSTI, _TIOCLINUX):
            rule(eperm, "ioctl", _ArgCmp(1, _CMP_MASKED_EQ, 0xFFFFFFFF, request))
        # Socket families: only Unix, IPv4, IPv6 and netlink (glibc's getaddrinfo asks the
        # kernel for addresses that way). The rest are not namespaced alike: AF_VSOCK, for
        # one, shares the virtual machine's port space with the host whatever the network
        # namespace. The family is an int: compared on the low 32 bits, as ioctl's request.
        no_family = _act_errno(errno.EAFNOSUPPORT)
        for call in ("socket", "socketpair"):
            for family in range(_AF_MAX):
                if family not in _SOCKET_FAMILIES:
                    rule(no_family, call, _ArgCmp(0, _CMP_MASKED_EQ, 0xFFFFFFFF, family))
            rule(no_family, call, _ArgCmp(0, _CMP_GE, _AF_MAX))
        # Netlink's socket diagnostics list every socket of the network namespace, which
        # the runs of one worker share (ss, /proc/net is the same through Landlock's rules).
        rule(
            _act_errno(errno.EPROTONOSUPPORT),
            "socket",
            _ArgCmp(0, _CMP_MASKED_EQ, 0xFFFFFFFF, _AF_NETLINK),
            _ArgCmp(2, _CMP_MASKED_EQ, 0xFFFFFFFF, _NETLINK_SOCK_DIAG),
        )
        # fallocate(KEEP_SIZE) reserves disk without growing the file, past RLIMIT_FSIZE:
        # on the output file the zygote opened on the host's disk, that is a disk bomb.
        keep_size = _ArgCmp(1, _CMP_MASKED_EQ, _FALLOC_FL_KEEP_SIZE, _FALLOC_FL_KEEP_SIZE)
        rule(eperm, "fallocate", keep_size)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    """The filter's BPF, through a memfd: libseccomp 2.5 can only write it to a descriptor."""
    fd = os.memfd_create("fulmen-seccomp", os.MFD_CLOEXEC)
    with open(fd, "rb") as memfd:
        _check(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
        memfd.seek(0)
        program = memfd.read()
    if not program or len(program) % _SOCK_FILTER_SIZE:
        raise OSError(errno.EINVAL, f"seccomp_export_bpf wrote {len(program)} bytes")
    _prepare(program)
    return program


_prepared: tuple[bytes, _SockFprog] | None = None


def _prepare(program: bytes) -> _SockFprog:
    """The ``sock_fprog`` for ``program``, kept for the next call with the same object.

    :func:`compile_filter` prepares its result in the zygote, so a child that installs that
    very object (inherited through fork) finds the structure built: building it in a fresh
    child, whose every first write to a page is a copy-on-write fault, was measured at ~40 µs,
    more than half of what the kernel takes to attach the filter.
    """
    global _prepared
    if _prepared is not None and _prepared[0] is program:
        return _prepared[1]
    count, partial = divmod(len(program), _SOCK_FILTER_SIZE)
    if partial or not 0 < count <= _BPF_MAXINSNS:
        raise ValueError(f"not a seccomp program: {len(program)} bytes")
    fprog = _SockFprog(count, program)
    _prepared = (program, fprog)
    return fprog


def install(program: bytes) -> None:
    """Apply ``program`` (from :func:`compile_filter`) to the calling thread; irreversible.

    The caller must have set ``PR_SET_NO_NEW_PRIVS`` (or hold CAP_SYS_ADMIN), and should call
    this before starting any thread: a filter applies to the thread that installs it and to
    the threads and processes it creates afterwards, not to threads already running.

    Raises:
        ValueError: ``program`` is not a whole, non-empty array of at most 4096 instructions.
        OSError: the kernel refused it (EACCES: no-new-privs is not set and the caller lacks
            CAP_SYS_ADMIN; EINVAL: not a valid seccomp program).
    """
    fprog = _prepare(program)
    try:
        libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
    except OSError as exc:
        raise OSError(exc.errno, f"installing the seccomp filter: {exc.strerror}") from None
