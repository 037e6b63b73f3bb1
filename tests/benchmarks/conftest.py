"""Shared pieces of the `make bench` suite: settings, result collection, the summary tables.

Settings (environment):
  EXO_BENCH_JITTER_S   seconds per wake-up jitter case (default 30; 3 for a quick run)
  EXO_BENCH_REF_S      seconds per comparison case (no SCHED_FIFO / time.sleep; default min(10, JITTER_S))
  EXO_BENCH_LOADS      comma list of loads for the SCHED_FIFO cases (default idle,other_core,same_core)
  EXO_BENCH_RT_PRIO    SCHED_FIFO priority of the measured loop (default 90: above the runtime's own loops)

The jitter table is printed at the end of the run and written to ``.benchmarks/jitter.json``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

import pytest

from jitter_worker import JITTER_S, REF_S, RT_PRIO

_JITTER = pytest.StashKey[list]()
_HOT = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def jitter_results(request) -> list:
    """Where each jitter case appends its summary (printed and written at the end)."""
    return request.config.stash.setdefault(_JITTER, [])


@pytest.fixture(scope="session")
def hot_results(request) -> dict:
    """group -> {variant: median seconds per call}, for the ratio table."""
    return request.config.stash.setdefault(_HOT, {})


def _fmt(x: float, nd: int = 3) -> str:
    return "nan" if x != x else f"{x:.{nd}f}"


def jitter_table(rows: list[dict]) -> list[str]:
    head = (f"{'case':<44} {'rate':>5} {'samples':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99.9':>7} {'max ms':>7} "
            f"{'>0.5ms':>6} {'missed':>6} {'FIFO':>4} {'load%':>5} {'rqwait':>7} {'otherRT':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        load_pct = f"{100 * r['load_cpu_fraction']:.0f}" if "load_cpu_fraction" in r else "-"
        lines.append(
            f"{r['name']:<44} {r['rate_hz']:>5.0f} {r['samples']:>7d} {_fmt(r['lateness_p50_ms']):>7} "
            f"{_fmt(r['lateness_p99_ms']):>7} {_fmt(r['lateness_p999_ms']):>7} {_fmt(r['lateness_max_ms']):>7} "
            f"{r['over_0p5ms']:>6d} {r['missed']:>6d} {'yes' if r['sched_fifo_granted'] else 'no':>4} {load_pct:>5} "
            f"{_fmt(r['run_queue_wait_ms'], 1):>7} {len(r['foreign_rt_on_loop_cpu']):>7d}")
    lines.append("rqwait: ms the loop spent runnable but waiting for its CPU over the run; otherRT: real-time "
                 "threads of other programs seen on the loop's CPU during the case (see jitter.json)")
    return lines


def hot_table(groups: dict) -> list[str]:
    head = f"{'group':<34} {'variant':<26} {'median':>10} {'x ref':>7}"
    lines = [head, "-" * len(head)]
    for group, variants in groups.items():
        ref = variants.get("reference")
        for name, median in variants.items():
            ratio = f"{median / ref:.2f}" if ref else "-"
            lines.append(f"{group:<34} {name:<26} {median * 1e9:>8.0f}ns {ratio:>7}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    rows = config.stash.get(_JITTER, [])
    groups = config.stash.get(_HOT, {})
    if groups:
        terminalreporter.section("hot paths (median per call; 'x ref' = ratio to the reference in the same run)")
        for line in hot_table(groups):
            terminalreporter.write_line(line)
    if not rows:
        return
    terminalreporter.section(f"wake-up jitter (|actual - scheduled|; {JITTER_S:g} s per case, references {REF_S:g} s)")
    for line in jitter_table(rows):
        terminalreporter.write_line(line)
    out_dir = Path(config.rootpath) / ".benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "jitter.json"
    doc = {
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "kernel": platform.release(), "machine": platform.machine(),
        "python": sys.version.split()[0], "cpus": sorted(os.sched_getaffinity(0)),
        "load_average_at_end": list(os.getloadavg()),
        "duration_s": JITTER_S, "reference_duration_s": REF_S, "rt_priority": RT_PRIO,
        "notes": ("lateness = start - scheduled of runtime.core.executor.FixedRateLoop with an empty step, one fresh "
                  "spawned process per case (mlockall, pinned to the loop CPU); load = a spawned process "
                  "spinning pure Python (SCHED_OTHER) on the loop's CPU (same_core) or the other CPU (other_core)"),
        "cases": rows,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    terminalreporter.write_line(f"written: {path}")
