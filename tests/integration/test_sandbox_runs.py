"""Real zygote, real children: events, limits, crashes, kills, and a zygote that dies.

By default each run is pid 1 of a pid namespace of its own, in a mount namespace whose run
directory is a tmpfs at ``SANDBOX_RUN_DIR`` (namespaces.py). Where the host's view of a run
matters (its processes, its directory), the tests look at it both that way and with
``use_namespaces=False``: separate host directories, the process group killed by the zygote.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fulmen.errors import SandboxError
from fulmen.sandbox import ChildExit, Limits, RunHandle, Zygote
from fulmen.sandbox.namespaces import SANDBOX_RUN_DIR

TESTS = str(Path(__file__).resolve().parents[1])
E = "sandbox_entries.entries:"
T = TypeVar("T")
NAMESPACES = pytest.mark.parametrize(
    "use_namespaces", [True, False], ids=["namespaces", "no-namespaces"]
)


def with_zygote(scenario: Callable[[Zygote], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with await Zygote.start(extra_sys_path=[TESTS], **options) as zygote:
            async with asyncio.timeout(30):
                return await scenario(zygote)

    return asyncio.run(main())


async def collect(handle: RunHandle) -> tuple[list[dict[str, Any]], ChildExit]:
    events = [event async for event in handle]
    return events, handle.exit


async def run(
    zygote: Zygote, entry: str, payload: dict[str, Any] | None = None, **limits: Any
) -> tuple[list[dict[str, Any]], ChildExit]:
    handle = await zygote.run(E + entry, payload or {}, Limits(**limits))
    return await collect(handle)


async def process_gone(pid: int) -> None:
    """Wait until ``pid`` has exited (a pidfd becomes readable then), without polling."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(pidfd, gone.set_result, None)
    try:
        await gone
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def pid_namespace(pid: int | str = "self") -> int:
    """The inode of a process's pid namespace (a run reports its own the same way)."""
    return os.stat(f"/proc/{pid}/ns/pid").st_ino


def processes_in(pid_ns: int) -> dict[int, int]:
    """Every live process in the pid namespace ``pid_ns`` (zombies, which have exited and
    wait for their parent, do not count): {host pid: its pid in there}."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if pid_namespace(name) != pid_ns:
                continue
            with open(f"/proc/{name}/status") as f:
                status = dict(line.split(":", 1) for line in f)
        except (OSError, ValueError):
            continue  # gone meanwhile
        if status["State"].split()[0] not in ("Z", "X"):
            found[int(name)] = int(status["NSpid"].split()[-1])
    return found


def run_processes(seen: dict[str, Any], key: str) -> dict[int, int]:
    """{host pid: pid in the run} of the run that reported ``seen``: every process in its pid
    namespace, or, without namespaces, the one it named as ``key`` (a host pid then)."""
    if seen["pid_ns"] == pid_namespace():
        return {seen[key]: seen[key]}
    return processes_in(seen["pid_ns"])


async def all_gone(seen: dict[str, Any], alive: Iterable[int]) -> None:
    """Wait until each of ``alive`` has exited; then nothing is left in the run's pid
    namespace either (with namespaces, its pid 1 is reaped only after all the others)."""
    for pid in alive:
        await process_gone(pid)
    if seen["pid_ns"] != pid_namespace():
        assert processes_in(seen["pid_ns"]) == {}


# -- events -------------------------------------------------------------------------------


def test_events_arrive_in_order_and_the_run_ends_ok() -> None:
    async def scenario(zygote: Zygote) -> None:
        events, result = await run(zygote, "count", {"n": 2000})
        assert events == [{"i": i} for i in range(2000)]
        assert result.kind == "ok"
        assert result.exit_code == 0 and result.signal is None
        assert result.max_rss_kb and result.max_rss_kb > 0

    with_zygote(scenario)


def test_large_events_survive_framing() -> None:
    async def scenario(zygote: Zygote) -> None:
        events, result = await run(zygote, "count", {"n": 40, "pad": 300_000})
        assert [e["i"] for e in events] == list(range(40))
        assert all(len(e["pad"]) == 300_000 for e in events)
        assert result.kind == "ok"

    with_zygote(scenario)


def test_a_child_nobody_reads_is_paused_not_buffered_without_bound() -> None:
    async def scenario(zygote: Zygote) -> None:
        # 6 MB of events: far more than the socket buffers plus the worker's queue.
        handle = await zygote.run(E + "count", {"n": 3000, "pad": 2000}, Limits())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(handle.wait(), 0.5)  # blocked in emit, so not done
        events, result = await collect(handle)  # reading resumes it
        assert [e["i"] for e in events] == list(range(3000))
        assert result.kind == "ok"

    with_zygote(scenario)


def test_large_events_nobody_reads_are_bounded_by_bytes_not_only_by_count() -> None:
    """A hundred 1 MB events are far below the event-count high-water mark: only a byte
    budget keeps them out of the worker's memory until they are read."""

    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024

    async def scenario(zygote: Zygote) -> None:
        before = rss_mb()
        handle = await zygote.run(E + "count", {"n": 100, "pad": 1_000_000}, Limits())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(handle.wait(), 1.0)  # paused: blocked in emit
        assert rss_mb() - before < 40
        events, result = await collect(handle)  # reading resumes it
        assert len(events) == 100 and result.kind == "ok"

    with_zygote(scenario)


def test_emit_is_safe_from_many_threads() -> None:
    async def scenario(zygote: Zygote) -> None:
        events, result = await run(zygote, "from_threads", {"threads": 8, "n": 300})
        assert result.kind == "ok"
        assert len(events) == 8 * 300
        for t in range(8):
            assert [e["i"] for e in events if e["t"] == t] == list(range(300))

    with_zygote(scenario)


def test_wait_returns_the_exit_and_keeps_events_for_iteration() -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(E + "count", {"n": 3}, Limits())
        result = await handle.wait()
        assert result.kind == "ok" and handle.exit is result
        assert [e async for e in handle] == [{"i": 0}, {"i": 1}, {"i": 2}]

    with_zygote(scenario)


def test_exit_is_not_available_before_the_run_ends() -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(E + "sleep", {}, Limits())
        with pytest.raises(SandboxError):
            _ = handle.exit
        handle.kill()
        assert (await handle.wait()).kind == "killed"

    with_zygote(scenario)


@NAMESPACES
def test_concurrent_runs_are_separate_processes_with_separate_directories(
    use_namespaces: bool,
) -> None:
    async def scenario(zygote: Zygote) -> None:
        handles = [await zygote.run(E + "whoami", {"n": n}, Limits()) for n in range(8)]
        results = await asyncio.gather(*(collect(h) for h in handles))
        seen = [events[0] for events, _ in results]
        assert all(result.kind == "ok" for _, result in results)
        assert [s["payload"]["n"] for s in seen] == list(range(8))
        if not use_namespaces:  # inside namespaces each is pid 1: the pid namespaces below
            assert len({s["pid"] for s in seen}) == 8
        # Eight runs alive at once: each has only the file it wrote itself in its directory,
        # and (a namespace's number is reused once it is freed, so only now) its own pids.
        claims = []
        for n in range(8):
            handle = await zygote.run(E + "claim_run_dir", {"n": n}, Limits())
            claim = await anext(handle)
            assert claim["names"] == [f"run-{n}"], claim
            claims.append((handle, claim))
        assert len({c["pid_ns"] for _, c in claims}) == (8 if use_namespaces else 1)
        for handle, _ in claims:
            handle.kill()
            assert (await handle.wait()).kind == "killed"
        for handle, claim in claims:
            if use_namespaces:  # the same path for all, each its own tmpfs
                assert claim["cwd"] == SANDBOX_RUN_DIR
            else:
                assert claim["cwd"] == handle.run_dir
            assert not os.path.exists(handle.run_dir), "run directory left behind"

    with_zygote(scenario, use_namespaces=use_namespaces)


@NAMESPACES
def test_runs_do_not_draw_the_same_random_numbers(use_namespaces: bool) -> None:
    """Every child is a copy of the zygote, random's state included: each must reseed it
    (the zygote forks without the interpreter's at-fork hooks, which did)."""

    async def scenario(zygote: Zygote) -> None:
        drawn = []
        for _ in range(3):
            handle = await zygote.run(E + "whoami", {}, Limits())
            drawn.append((await collect(handle))[0][0]["random"])
        assert len(set(drawn)) == 3, drawn

    with_zygote(scenario, use_namespaces=use_namespaces)


@NAMESPACES
def test_child_has_its_own_session_and_directory(use_namespaces: bool) -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(E + "whoami", {}, Limits())
        me = (await collect(handle))[0][0]
        assert me["sid"] == me["pid"] == me["pgid"]
        assert me["environ"]["HOME"] == me["environ"]["TMPDIR"] == me["tempdir"] == me["cwd"]
        if use_namespaces:
            # pid 1 of its own pid namespace, its parent outside it (so it has no pid there).
            assert (me["pid"], me["ppid"]) == (1, 0)
            assert me["pid_ns"] != pid_namespace()
            assert me["cwd"] == SANDBOX_RUN_DIR
        else:
            assert me["ppid"] == zygote.pid != me["pid"]
            assert me["cwd"] == handle.run_dir

    with_zygote(scenario, use_namespaces=use_namespaces)


def test_child_inherits_no_descriptor_but_its_socket() -> None:
    # An inheritable descriptor in the worker must reach neither the zygote nor a child.
    read_end, write_end = os.pipe()
    os.set_inheritable(read_end, True)
    os.set_inheritable(write_end, True)
    try:

        async def scenario(zygote: Zygote) -> None:
            events, _ = await run(zygote, "whoami")
            assert events[0]["fds"] == [0, 1, 2, 3]

        with_zygote(scenario)
    finally:
        os.close(read_end)
        os.close(write_end)


# -- limits -------------------------------------------------------------------------------


def test_wall_clock_timeout_kills_the_run_quickly() -> None:
    async def scenario(zygote: Zygote) -> None:
        events, result = await run(zygote, "sleep", timeout_s=0.3)
        assert events == [{"sleeping": True}]
        assert result.kind == "timeout"
        assert result.signal == signal.SIGKILL
        assert "time limit of 0.3s" in result.message
        assert 0.3 <= result.duration_s < 3

    with_zygote(scenario)


@NAMESPACES
def test_timeout_kills_the_whole_process_group(use_namespaces: bool) -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(E + "spawn_then_sleep", {}, Limits(timeout_s=0.5))
        first = await anext(handle)
        alive = run_processes(first, "grandchild")
        assert first["grandchild"] in alive.values()
        _, result = await collect(handle)
        assert result.kind == "timeout"
        await all_gone(first, alive)

    with_zygote(scenario, use_namespaces=use_namespaces)


def test_memory_hog_ends_as_oom() -> None:
    async def scenario(zygote: Zygote) -> None:
        events, result = await run(zygote, "hog_memory", memory_mb=64, timeout_s=20)
        assert events == [{"hogging": True}]
        assert result.kind == "oom"
        assert result.message == "Run exceeded its memory limit of 64 MB"

    with_zygote(scenario)


def test_small_memory_limit_still_lets_the_child_start() -> None:
    async def scenario(zygote: Zygote) -> None:
        events, result = await run(zygote, "count", {"n": 1}, memory_mb=8)
        assert (events, result.kind) == ([{"i": 0}], "ok")

    with_zygote(scenario)


def test_cpu_limit_ends_as_timeout() -> None:
    async def scenario(zygote: Zygote) -> None:
        _, result = await run(zygote, "spin", cpu_s=1, timeout_s=20)
        assert result.kind == "timeout"
        # As a pid namespace's init, the run ignores SIGXCPU: the hard limit's SIGKILL,
        # a second later, ends it (outcome.classify knows it from the CPU time used).
        expected = signal.SIGKILL if zygote.isolation.applied("pid_namespace") else signal.SIGXCPU
        assert result.signal == expected
        assert result.message == "Run exceeded its CPU time limit of 1s"

    with_zygote(scenario)


# -- crashes ------------------------------------------------------------------------------


def test_os_exit_is_a_crash_with_the_code() -> None:
    async def scenario(zygote: Zygote) -> None:
        events, result = await run(zygote, "exit_with", {"code": 7})
        assert events == [{"exiting": 7}]
        assert (result.kind, result.exit_code) == ("crash", 7)
        assert result.message == "Process exited with code: 7"
        assert result.output == "last words on stderr\n"

    with_zygote(scenario)


def test_segfault_is_a_crash_naming_the_signal() -> None:
    async def scenario(zygote: Zygote) -> None:
        _, result = await run(zygote, "segfault")
        assert (result.kind, result.signal) == ("crash", signal.SIGSEGV)
        assert result.message == "Process killed by signal SIGSEGV"

    with_zygote(scenario)


def test_uncaught_exception_is_a_crash_with_type_and_message() -> None:
    async def scenario(zygote: Zygote) -> None:
        events, result = await run(zygote, "fail", {"message": "bad input"})
        assert events == [{"about_to": "fail"}]
        assert result.kind == "crash"
        assert result.message == "ValueError: bad input"

    with_zygote(scenario)


def test_unknown_entry_is_a_crash_naming_it() -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run("sandbox_entries.nowhere:entry", {}, Limits())
        _, result = await collect(handle)
        assert result.kind == "crash"
        assert result.message.startswith("Could not load the sandbox entry: ModuleNotFoundError")

    with_zygote(scenario)


def test_child_that_breaks_the_protocol_is_killed_as_a_crash() -> None:
    async def scenario(zygote: Zygote) -> None:
        _, result = await run(zygote, "emit_garbage", timeout_s=20)
        assert result.kind == "crash"
        assert result.message.startswith("Run broke the sandbox protocol: Sandbox frame is not")

    with_zygote(scenario)


def test_grandchild_holding_the_socket_does_not_hang_the_run() -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(E + "fork_holding_socket", {}, Limits(timeout_s=20))
        first = await anext(handle)
        alive = run_processes(first, "grandchild")  # maybe ended already: then none
        _, result = await collect(handle)
        assert result.kind == "ok"
        await all_gone(first, alive)  # killed with the run

    with_zygote(scenario)


@pytest.mark.parametrize("entry", ["announce_then_linger", "announce_and_keep_the_socket"])
def test_a_child_cannot_announce_its_end_and_keep_running(entry: str) -> None:
    """The ``exit`` record ends the run, whether or not the stream ends with it."""

    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(E + entry, {}, Limits(timeout_s=20))
        first = await anext(handle)
        alive = run_processes(first, "pid")
        _, result = await collect(handle)
        assert result.kind == "ok"  # what it said; the job decides its own outcome anyway
        await all_gone(first, alive)  # but it does not outlive its run

    with_zygote(scenario)


def test_bad_requests_are_refused_before_any_fork() -> None:
    async def scenario(zygote: Zygote) -> None:
        with pytest.raises(SandboxError, match="is not 'package\\.module:function'"):
            await zygote.run("no colon here", {})
        with pytest.raises(SandboxError, match="not JSON-serialisable"):
            await zygote.run(E + "trivial", {"x": object()})
        with pytest.raises(SandboxError, match="timeout_s"):
            Limits(timeout_s=-1)

    with_zygote(scenario)


# -- kill and zygote death ----------------------------------------------------------------


@NAMESPACES
def test_kill_ends_the_run_and_its_group(use_namespaces: bool) -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(E + "spawn_then_sleep", {}, Limits())
        first = await anext(handle)
        alive = run_processes(first, "grandchild")
        assert first["grandchild"] in alive.values()
        handle.kill()
        _, result = await collect(handle)
        assert result.kind == "killed"
        await all_gone(first, alive)

    with_zygote(scenario, use_namespaces=use_namespaces)


def test_zygote_death_fails_active_runs_and_the_next_run_restarts_it() -> None:
    async def scenario(zygote: Zygote) -> None:
        first, second = [await zygote.run(E + "sleep", {}, Limits()) for _ in range(2)]
        await anext(first)
        await anext(second)
        old_pid, old_level = zygote.pid, zygote.isolation.level
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        for handle in (first, second):
            _, result = await collect(handle)
            assert result.kind == "crash"
            assert result.message.startswith("Sandbox zygote exited unexpectedly")
        assert not zygote.alive
        events, result = await run(zygote, "count", {"n": 1})
        assert (events, result.kind) == ([{"i": 0}], "ok")
        assert zygote.pid not in (None, old_pid)
        assert zygote.isolation.level == old_level  # probed again, found the same

    with_zygote(scenario)


@NAMESPACES
def test_a_zygote_s_death_takes_every_process_of_its_runs_with_it(use_namespaces: bool) -> None:
    """Its children die with it (their parent-death signal); what they started goes too: with
    namespaces, with their pid namespace (the zygote no longer reports their pids); without,
    killed by group from the worker."""

    async def scenario(zygote: Zygote) -> None:
        handles = [await zygote.run(E + "spawn_then_sleep", {}, Limits()) for _ in range(2)]
        seen = [await anext(handle) for handle in handles]
        alive = [run_processes(first, "grandchild") for first in seen]
        assert all(alive)
        assert zygote.pid is not None
        os.kill(zygote.pid, signal.SIGKILL)
        for handle in handles:
            assert (await collect(handle))[1].kind == "crash"
        for first, processes in zip(seen, alive, strict=True):
            await all_gone(first, processes)

    with_zygote(scenario, use_namespaces=use_namespaces)


def test_restart_replaces_the_zygote() -> None:
    async def scenario(zygote: Zygote) -> None:
        old_pid = zygote.pid
        await zygote.restart()
        assert zygote.pid not in (None, old_pid)
        _, result = await run(zygote, "trivial")
        assert result.kind == "ok"

    with_zygote(scenario)


def test_close_kills_runs_still_in_flight() -> None:
    async def scenario() -> None:
        zygote = await Zygote.start(extra_sys_path=[TESTS])
        handle = await zygote.run(E + "sleep", {}, Limits())
        await anext(handle)
        await zygote.close()
        assert handle.exit.kind == "killed"
        assert not os.path.exists(handle.run_dir)
        with pytest.raises(SandboxError, match="closed"):
            await zygote.run(E + "trivial", {})

    asyncio.run(scenario())


def test_preload_failures_are_reported_not_fatal() -> None:
    async def scenario(zygote: Zygote) -> None:
        assert set(zygote.preload_errors) == {"no_such_module_anywhere"}
        assert "ModuleNotFoundError" in zygote.preload_errors["no_such_module_anywhere"]
        _, result = await run(zygote, "trivial")
        assert result.kind == "ok"

    with_zygote(scenario, preload=["json", "no_such_module_anywhere"])


# -- warm-up ------------------------------------------------------------------------------


def test_warm_up_runs_in_the_zygote_and_again_in_each_child_before_its_run() -> None:
    async def scenario(zygote: Zygote) -> list[dict[str, Any]]:
        runs = []
        for _ in range(2):
            handle = await zygote.run(E + "warmed", {}, Limits())
            (event,), _ = await collect(handle)
            runs.append(event)
        return runs

    runs = with_zygote(scenario, preload=[E[:-1]], warm_up=[E + "warm_up"])
    # Processes as (pid, pid namespace): every run may be pid 1 of a namespace of its own.
    # (Not the handle's host pid: a run that announced its end concludes before the zygote's
    # report, which is where that pid comes from.)
    for event in runs:
        # The zygote calls it several times (the bytecode it walks is specialised there,
        # not in each child), the spare once.
        *in_zygote, in_child = map(tuple, event["warmed_in"])
        assert len(in_zygote) > 1 and len(set(in_zygote)) == 1
        assert in_child == (event["pid"], event["pid_ns"]) != in_zygote[0]
        assert in_zygote[0][1] == pid_namespace()


def test_a_run_s_warm_hint_reaches_the_spares_forked_after_it_and_no_plain_run() -> None:
    """The hint of the latest run (``Zygote.run(warm=...)``) is what spares forked from then
    on warm up with; a run that brings none is never handed a spare warmed with one."""

    async def scenario(zygote: Zygote) -> list[list[Any]]:
        seen = []
        for warm in ({"lang": "js"}, {"lang": "js"}, {"lang": "js"}, None, None):
            handle = await zygote.run(E + "warmed", {}, Limits(), warm=warm)
            (event,), _ = await collect(handle)
            seen.append(event["hints"])
            await asyncio.sleep(0.3)  # the next spares fork meanwhile
        return seen

    hints = with_zygote(scenario, preload=[E[:-1]], warm_up=[E + "warm_up"])
    # Each run sees the zygote's warm-up (no hint) and its own spare's: from the second run
    # on, one warmed with its hint (preferred to a plain spare forked before the first).
    assert [h[-1] for h in hints] == [None, {"lang": "js"}, {"lang": "js"}, None, None]
    assert all(h[0] is None for h in hints)


def test_a_spare_warmed_with_one_exact_hint_is_never_handed_a_run_with_another() -> None:
    """What a hint's ``exact`` part made a warm-up run (a Python environment's imports) is
    inherited only by a run with the same ``exact`` part."""

    async def scenario(zygote: Zygote) -> list[Any]:
        seen = []
        hints = ({"exact": "a"}, {"exact": "a"}, {"exact": "b"}, {"exact": "b"}, {"lang": "js"})
        for warm in hints:
            handle = await zygote.run(E + "warmed", {}, Limits(), warm=warm)
            (event,), _ = await collect(handle)
            seen.append(event["hints"][-1])
            await asyncio.sleep(0.3)  # the next spares fork meanwhile
        return seen

    seen = with_zygote(scenario, preload=[E[:-1]], warm_up=[E + "warm_up"])
    # The third run ends the spares warmed for "a" and takes the plain one left; the last,
    # whose hint has no exact part, ends those warmed for "b" and gets one forked for it.
    assert seen == [None, {"exact": "a"}, None, {"exact": "b"}, {"lang": "js"}]


def test_a_spare_s_warm_up_finds_nothing_of_the_zygote_s_and_cannot_end_another_run() -> None:
    """A warm-up runs code the run chose before the run arrives (a pinned package's import);
    ``hostile_warm_up`` stands for it. It must find no descriptor of the zygote's (its epoll
    set, another run's pidfd or OOM eventfd, its uid range's lock, the worker's stderr): a
    run in flight meanwhile ends as we end it, not as out of memory."""

    hostile = {"hostile": True}

    async def scenario(zygote: Zygote) -> tuple[dict[str, str], ChildExit]:
        victim = await zygote.run(E + "sleep", {}, Limits(memory_mb=256))
        events = aiter(victim)
        assert await anext(events) == {"sleeping": True}
        # Spares forked after a run with a hint warm up with it: a few runs later, one was.
        for _ in range(5):
            (event,), _ = await collect(await zygote.run(E + "found_in_warm_up", {}, warm=hostile))
            if event["found"]:
                break
        victim.kill()
        return event["found"], await victim.wait()

    found, victim_exit = with_zygote(scenario, preload=[E[:-1]], warm_up=[E + "hostile_warm_up"])
    assert found, "no run got a spare warmed with the hint"
    assert victim_exit.kind == "killed"
    # stdin, stdout and stderr on /dev/null, and its own socket to the zygote: nothing else
    # (the Landlock grants' handles, in the host's mounts, were closed once applied).
    (own,) = set(found) - {"0", "1", "2"}
    assert found == {"0": "/dev/null", "1": "/dev/null", "2": "/dev/null", own: found[own]}
    assert found[own].startswith("socket:")


def test_a_failing_warm_up_is_reported_and_runs_still_work() -> None:
    async def scenario(zygote: Zygote) -> tuple[dict[str, str], list[dict[str, Any]]]:
        events, exit = await run(zygote, "warmed")
        assert exit.kind == "ok"
        return dict(zygote.preload_errors), events

    errors, events = with_zygote(scenario, warm_up=[E + "broken_warm_up"])
    assert errors == {E + "broken_warm_up": "RuntimeError: cannot warm up"}
    assert events[0]["warmed_in"] == []
