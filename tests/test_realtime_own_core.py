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
