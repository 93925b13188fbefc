"""The runs' network: the outside world through pasta, or nothing; never the host's loopback.

Issue 12. A job in the host's network namespace reaches every service on ``127.0.0.1``: the
coordinator, the runner's API, PostgreSQL, Redis, the worker's health port. The zygote makes
one network namespace at start, shared by all its runs (each spare joins it before entering
its own user namespace), and gives it, by policy:

- ``outside`` (the default): a ``pasta`` process (Debian's ``passt`` package: user-mode
  networking, the same that rootless Podman uses) copies the host's addresses and routes
  into the namespace and carries TCP, UDP and ICMP over IPv4 to the outside world.
  ``--no-map-gw`` keeps the gateway address from reaching the host's loopback, IPv6 is off
  (the host's own link-local address would be reached), and no port of the host is
  forwarded, except those the operator allows (``allow``: loopback ``host:port`` pairs,
  forwarded with ``-T``; the tests use that for their local HTTP servers).
- ``none``: a network namespace per run, made by the spare itself (it costs a fraction
  of a millisecond, before the run arrives), with its own loopback and nothing else: no
  other run, nothing of the host.
- ``host``: no namespace at all (today's behaviour before issue 12; for trusted code only).

For ``outside``, one namespace per zygote rather than per run: a pasta per run would cost
about 20 ms and a process each. Runs of one worker can therefore see each other's listening
sockets on the namespace's loopback; Landlock's scoping (ABI 6) still keeps them off each
other's abstract Unix sockets, Landlock's network rules let them bind ephemeral TCP ports
only, and nothing of the host is there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from fulmen.sandbox import capabilities, libc
from fulmen.sandbox.namespaces import CLONE_NEWNET, unshare

__all__ = ["NETWORK_POLICIES", "Network", "bring_loopback_up", "parse_allow", "start"]

NETWORK_POLICIES: Final = ("outside", "none", "host")


@dataclass(slots=True)
class Network:
    """The shared namespace (an open descriptor children ``setns`` into) and its keepers."""

    policy: str
    fd: int | None
    """``/proc/<holder>/ns/net``, or None for ``host``."""
    holder: int | None
    detail: str
    pid_file: str = ""
    """Where pasta wrote its pid (it runs in the background, and does not notice the
    namespace going away when it is not bound to a file)."""

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.holder is not None:
            os.kill(self.holder, signal.SIGKILL)
            os.waitpid(self.holder, 0)
            self.holder = None
        if self.pid_file:
            stop_pasta(self.pid_file)
            self.pid_file = ""


def stop_pasta(pid_file: str) -> None:
    """End the pasta whose pid is in ``pid_file`` and remove the file (idempotent)."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip() or 0)
        os.unlink(pid_file)
    except (OSError, ValueError):
        return
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def parse_allow(entries: Sequence[str]) -> list[int]:
    """``["127.0.0.1:8080", "localhost:9000"]`` → the loopback ports to forward.

    Raises:
        ValueError: an entry is not ``host:port`` with a loopback host and a valid port.
    """
    ports = []
    for entry in entries:
        host, _, port = entry.rpartition(":")
        host = host.strip("[]")
        if host != "localhost":
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError(
                    f"network allow entry {entry!r}: only the host's loopback addresses can be "
                    "allowed (the outside world is reachable already)"
                )
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"network allow entry {entry!r}: not host:port")
        ports.append(int(port))
    return ports


def start(policy: str, allow_ports: Sequence[int], pid_file: str) -> Network:
    """Make the shared namespace for ``policy`` (in the zygote, before any spare);
    ``pid_file`` is where pasta's pid goes.

    Raises:
        OSError: the namespace or pasta could not be set up; the message says which.
    """
    if policy == "host":
        return Network(policy, None, None, "the host's network namespace, loopback included")
    if policy == "none":
        # Nothing to share: each run unshares a namespace of its own (child.py).
        return Network(policy, None, None, "a network namespace of its own per run, loopback only")
    read_end, write_end = os.pipe()
    holder = os.fork()
    if holder == 0:  # pragma: no cover - the holder only keeps the namespace alive
        try:
            os.close(read_end)
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
            unshare(CLONE_NEWNET)
            # pasta gives up its capabilities before it opens /proc/<us>/ns/net, and the
            # kernel lets it only if we hold none it lacks (ptrace access mode): say we are
            # ready only once they are gone.
            capabilities.clear_sets()
            os.write(write_end, b"r")
            os.close(write_end)
            while True:
                signal.pause()
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        if os.read(read_end, 1) != b"r":
            raise OSError("the network namespace's holder could not make it")
        fd = os.open(f"/proc/{holder}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
        raise
    finally:
        os.close(read_end)
    os.set_inheritable(fd, True)  # spares setns into it; they close it before any job runs
    network = Network(policy, fd, holder, "own network namespace, loopback only")
    if policy == "outside":
        try:
            network.detail = _start_pasta(holder, allow_ports, pid_file)
            network.pid_file = pid_file
        except OSError:
            network.close()
            raise
    return network


def _start_pasta(holder: int, allow_ports: Sequence[int], pid_file: str) -> str:
    pasta = shutil.which("pasta", path="/usr/bin:/usr/sbin:/bin:/sbin")
    if pasta is None:
        raise OSError(
            "pasta is not installed (Debian's package passt); install it, or choose the "
            "network policy none or host"
        )
    forward = ",".join(str(p) for p in allow_ports) or "none"
    command = [
        pasta,
        "--quiet",
        "--pid", pid_file,
        "--runas", "0",  # it must open the holder's namespace; it drops its capabilities
        "--netns", f"/proc/{holder}/ns/net",
        "--netns-only",
        "--config-net",
        "--no-map-gw",
        # IPv6 would reach the host's own link-local address, where every service bound to
        # [::] listens (pasta makes the connection from the host): IPv4 only.
        "--ipv4-only",
        "-t", "none", "-u", "none",  # nothing from outside into the namespace
        "-T", forward, "-U", "none",  # from the namespace to the host: only what is allowed
    ]  # fmt: skip
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10, check=False
    )
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise OSError(f"pasta failed: {why[-1] if why else f'exit status {done.returncode}'}")
    allowed = f"; host loopback ports allowed: {forward}" if allow_ports else ""
    return f"outside world through pasta, host loopback unreachable{allowed}"


def bring_loopback_up() -> None:
    """``ip link set lo up`` in a new network namespace (where it starts down), by ioctl;
    needs CAP_NET_ADMIN in the namespace's user namespace."""
    import fcntl  # only spares need it

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


_SIOCGIFFLAGS: Final = 0x8913
_SIOCSIFFLAGS: Final = 0x8914
_IFF_UP: Final = 0x1
