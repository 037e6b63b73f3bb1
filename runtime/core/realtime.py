"""Real-time settings of the calling process: SCHED_FIFO, CPU affinity, locked memory.

Each is attempted only when asked for, and the outcome is *reported* either way
(never silently assumed): a loop that did not get SCHED_FIFO must say so, because
its wake-up jitter is then several times worse (see README, "Timing").
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

MCL_CURRENT = 1
MCL_FUTURE = 2


@dataclass(slots=True)
class RealtimeReport:
    """What the OS granted to this process (and why not, where it refused)."""

    sched_fifo: bool = False
    priority: int = 0
    cpus: tuple[int, ...] = ()
    memory_locked: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"sched_fifo": self.sched_fifo, "priority": self.priority, "cpus": list(self.cpus),
                "memory_locked": self.memory_locked, "notes": list(self.notes)}

    def line(self) -> str:
        sched = f"SCHED_FIFO prio {self.priority}" if self.sched_fifo else "SCHED_OTHER (no real-time priority)"
        mem = "memory locked" if self.memory_locked else "memory NOT locked"
        return f"{sched}, cpus {list(self.cpus)}, {mem}" + (f" ({'; '.join(self.notes)})" if self.notes else "")


def apply_realtime(*, sched_fifo: bool, priority: int, cpus: list[int] | None, lock_memory: bool) -> RealtimeReport:
    """Ask the OS for real-time scheduling, CPU pinning and locked memory for this process.

    ``priority`` is the SCHED_FIFO priority 1..99. ``cpus`` is the affinity set (None keeps the
    current one). Failures are recorded in ``notes`` (e.g. "SCHED_FIFO refused: [Errno 1] ...").
    """
    report = RealtimeReport()
    if cpus:
        _set_affinity(list(cpus), report)
    report.cpus = tuple(sorted(os.sched_getaffinity(0)))
    if sched_fifo:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except (OSError, AttributeError) as exc:
            report.notes.append(f"SCHED_FIFO refused: {exc}")
    policy = os.sched_getscheduler(0)
    report.sched_fifo = policy == os.SCHED_FIFO
    report.priority = os.sched_getparam(0).sched_priority if report.sched_fifo else 0
    if lock_memory:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
            report.memory_locked = True
        else:
            err = ctypes.get_errno()
            soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
            report.notes.append(f"mlockall refused: {os.strerror(err)} (RLIMIT_MEMLOCK={soft})")
    return report


def online_cpus() -> set[int]:
    """The CPUs the kernel has online (``/sys/devices/system/cpu/online``, e.g. ``0-3,6``), not only those in
    this process's current affinity set: a process pinned to one core must still be able to move to another."""
    try:
        text = Path("/sys/devices/system/cpu/online").read_text().strip()
        cpus: set[int] = set()
        for part in filter(None, text.split(",")):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        if cpus:
            return cpus
    except (OSError, ValueError):
        pass
    return set(range(os.cpu_count() or 1))


def _set_affinity(cpus: list[int], report: RealtimeReport) -> None:
    """Pin to ``cpus`` (those online; the others are noted, not silently dropped).  The kernel may still refuse
    CPUs outside this process's cgroup cpuset: that refusal is noted and the affinity kept."""
    online = online_cpus()
    wanted = {c for c in cpus if c in online}
    dropped = sorted(set(cpus) - wanted)
    if not wanted:
        report.notes.append(f"cpu_affinity {cpus} not among online cpus {sorted(online)}; kept")
        return
    if dropped:
        report.notes.append(f"cpu_affinity: cpus {dropped} not online (online: {sorted(online)}); using {sorted(wanted)}")
    try:
        os.sched_setaffinity(0, wanted)
    except OSError as exc:
        report.notes.append(f"affinity {sorted(wanted)} refused: {exc}; kept {sorted(os.sched_getaffinity(0))}")


def probe_realtime() -> dict[str, object]:
    """What this process *could* get, without keeping it (for `exo doctor`)."""
    out: dict[str, object] = {}
    try:
        prev_policy, prev_param = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        os.sched_setscheduler(0, prev_policy, prev_param)
        out["sched_fifo"] = True
    except OSError as exc:
        out["sched_fifo"] = False
        out["sched_fifo_error"] = str(exc)
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    out["rlimit_memlock"] = "unlimited" if soft == resource.RLIM_INFINITY else soft
    out["cpus"] = sorted(os.sched_getaffinity(0))
    return out


def own_core(available: set[int] | None = None) -> int | None:
    """The CPU a process pinned to "its own core" gets: the highest-numbered of ``available`` (default: this
    process's affinity set); None with fewer than two (nothing to keep apart)."""
    cpus = set(os.sched_getaffinity(0)) if available is None else set(available)
    return max(cpus) if len(cpus) >= 2 else None


def pin_to_own_core(core: int | None = None) -> RealtimeReport:
    """Pin this process to one CPU (``core``, default :func:`own_core`) and report the outcome.

    Meant for the vision process: its pose inference then never competes for a core with the estimation and
    torque processes, which keep the others (give them :func:`cpus_except` of it). With a single CPU nothing is
    pinned (noted).
    """
    report = RealtimeReport()
    available = set(os.sched_getaffinity(0))
    target = own_core(available) if core is None else int(core)
    if target is None:
        report.notes.append(f"only {len(available)} cpu(s) {sorted(available)}: vision not pinned")
    elif target not in available:
        report.notes.append(f"cpu {target} not among available cpus {sorted(available)}; kept")
    else:
        try:
            os.sched_setaffinity(0, {target})
        except OSError as exc:
            report.notes.append(f"affinity refused: {exc}")
    report.cpus = tuple(sorted(os.sched_getaffinity(0)))
    return report


def cpus_except(core: int | None, available: set[int] | None = None) -> list[int]:
    """The CPUs left to the other processes when ``core`` belongs to the vision process (all when None)."""
    cpus = set(os.sched_getaffinity(0)) if available is None else set(available)
    rest = sorted(cpus - ({core} if core is not None else set()))
    return rest or sorted(cpus)
