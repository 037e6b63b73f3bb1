"""Real-time scheduling for the HIL plant process: SCHED_FIFO priority and CPU pinning (Linux).

The plant stands for hardware: a 1 kHz tick that falls behind is no longer the drive it emulates, and a real drive
waits for no host process. Sharing two cores with the estimation and torque processes, it gets by default
(runtime/cli/plant_companion.py) a SCHED_FIFO priority just above the torque loop's, on the estimation CPU
(launch/config/device_hil.yaml: torque 80 on CPU 1, estimation 50 on CPU 0; the plant 85 on CPU 0). Measured
(`exo hil hil/scenarios/cuff.yaml`, 3 legs of 20 s) on the alternatives:

* below the torque loop on its CPU (65 on CPU 1): the torque process's own start-up (mlockall at SCHED_FIFO 80) and
  exit held the plant 60-90 ms: 0.8 % of the ticks missed;
* above the torque loop on its CPU (85 on CPU 1): 0.01-0.07 % missed, but the plant preempts the torque loop inside
  its send() and replies before the command's log stamp is taken, so the logged command-to-reply latency reads one
  period (1.95 ms) instead of ~0.1 ms;
* 85 on the estimation CPU: 0.005-0.07 % missed, command-to-reply p50 0.08-0.09 ms (the default).

A plant tick costs 50-130 us (p50-p99), so the estimation loop below it loses a few per cent of its CPU. The CPU set
may be any online CPU, not only the caller's affinity (a parent pinned by an earlier run must not keep it there).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from typing import Any

_MCL_CURRENT, _MCL_FUTURE = 1, 2     # <sys/mman.h>


def apply_plant_realtime(priority: int | None, cpus: Sequence[int] | None, lock_memory: bool = False) -> dict[str, Any]:
    """Pin this process to ``cpus`` (None: unchanged), ask SCHED_FIFO at ``priority`` 1..98 (None: unchanged) and,
    with ``lock_memory``, ``mlockall`` (no page fault stalls a tick).

    Returns what it got: ``cpus`` (the affinity after), ``sched_fifo``, ``priority``, ``memory_locked``, ``notes``
    (refusals)."""
    notes: list[str] = []
    if priority is not None and not (isinstance(priority, int) and 1 <= priority <= 98):
        raise ValueError(f"priority = {priority!r}: allowed 1..98 (SCHED_FIFO), or None")
    if cpus:
        have = set(range(os.cpu_count() or 1))
        want = {int(c) for c in cpus} & have
        if want:
            try:
                os.sched_setaffinity(0, want)
            except OSError as e:
                notes.append(f"affinity {sorted(want)} refused: {e}")
        else:
            notes.append(f"cpus {list(cpus)} not among the online {sorted(have)}; affinity kept")
    if priority is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except (OSError, AttributeError) as e:
            notes.append(f"SCHED_FIFO {priority} refused: {e}")
    locked = False
    if lock_memory:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        locked = libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) == 0
        if not locked:
            notes.append(f"mlockall refused: {os.strerror(ctypes.get_errno())}")
    fifo = os.sched_getscheduler(0) == os.SCHED_FIFO
    return {"cpus": sorted(os.sched_getaffinity(0)), "sched_fifo": fifo,
            "priority": os.sched_getparam(0).sched_priority if fifo else 0, "memory_locked": locked, "notes": notes}
