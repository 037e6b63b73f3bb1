"""Pinning the vision process to its own core (runtime.core.realtime.pin_to_own_core), in a child process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from runtime.core.realtime import cpus_except, own_core

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_own_core_choice():
    assert own_core({0, 1}) == 1 and own_core({2, 5, 7}) == 7
    assert own_core({3}) is None and own_core(set()) is None
    assert cpus_except(1, {0, 1}) == [0]
    assert cpus_except(None, {0, 1}) == [0, 1]
    assert cpus_except(0, {0}) == [0]          # nothing else left: the others share it


def _pin_in_child(arg: str) -> dict:
    code = ("import json, os; from runtime.core.realtime import pin_to_own_core; "
            f"r = pin_to_own_core({arg}); print(json.dumps({{'report': r.as_dict(), "
            "'affinity': sorted(os.sched_getaffinity(0))}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_pin_to_own_core_in_a_child_process():
    available = sorted(os.sched_getaffinity(0))
    got = _pin_in_child("")
    if len(available) < 2:
        assert got["affinity"] == available and "not pinned" in " ".join(got["report"]["notes"])
        pytest.skip(f"one cpu {available}: nothing to pin apart")
    assert got["affinity"] == [max(available)] == got["report"]["cpus"]
    assert got["report"]["notes"] == []
    assert sorted(os.sched_getaffinity(0)) == available    # this process untouched
    bad = _pin_in_child("10_000")
    assert bad["affinity"] == available and "not among available" in bad["report"]["notes"][0]


def _apply_in_child(first: list[int], then: list[int]) -> dict:
    code = ("import json, os; from runtime.core.realtime import apply_realtime; "
            f"os.sched_setaffinity(0, {set(first)!r}); "
            f"r = apply_realtime(sched_fifo=False, priority=0, cpus={then!r}, lock_memory=False); "
            "print(json.dumps({'report': r.as_dict(), 'affinity': sorted(os.sched_getaffinity(0))}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_apply_realtime_can_move_a_pinned_process_to_another_core():
    """A process already pinned to core a can be moved to core b (the check is against the online CPUs, not the
    current affinity set: the bug the HIL comparison used to work around)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        pytest.skip(f"one cpu {available}: nothing to move between")
    a, b = available[0], available[-1]
    got = _apply_in_child([a], [b])
    assert got["affinity"] == [b] == got["report"]["cpus"]
    assert got["report"]["notes"] == []


def test_apply_realtime_notes_cpus_that_are_not_online():
    from runtime.core.realtime import online_cpus

    online = online_cpus()
    assert set(os.sched_getaffinity(0)) <= online
    ghost = max(online) + 1000
    available = sorted(os.sched_getaffinity(0))
    got = _apply_in_child(available, [available[0], ghost])
    assert got["affinity"] == [available[0]]
    assert any(str(ghost) in n and "not online" in n for n in got["report"]["notes"])
    got = _apply_in_child(available, [ghost])
    assert got["affinity"] == available and "kept" in got["report"]["notes"][0]
