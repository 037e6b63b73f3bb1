"""Processes behind the wake-up jitter benchmark (imported by spawned children; not a test module).

Each measurement runs in a *fresh* process started with the ``spawn`` context, so the
SCHED_FIFO policy, the CPU affinity and ``mlockall`` it asks for never leak into the
pytest process. The load, when there is one, is a second spawned process spinning
pure Python on one CPU (the loop's own CPU, or the other one).

    run_case(case) -> dict          # in the pytest process: start load, measure, stop load
      measure(conn, case)           # child: apply_realtime, warm-up, FixedRateLoop.run, send summary
      spin(cpu, ready, stop, conn)  # child: the CPU load

Wake-up lateness is ``start - scheduled`` of ``runtime.core.executor.FixedRateLoop`` (absolute
deadlines ``t0 + k * period``), with a step that does nothing, so it is the scheduler's and
the sleep call's jitter only.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import threading
import time
import traceback
from typing import Any

import numpy as np


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} = {raw!r}: must be a positive number of seconds")
    return value


# Settings of the suite (see conftest.py for what they mean).
JITTER_S = _env_seconds("EXO_BENCH_JITTER_S", 30.0)
REF_S = _env_seconds("EXO_BENCH_REF_S", min(10.0, JITTER_S))
LOADS = tuple(x.strip() for x in os.environ.get("EXO_BENCH_LOADS", "idle,other_core,same_core").split(",") if x.strip())
# Above the runtime's own loops (torque 80, estimation 50 in launch/config/device.yaml), so that an
# `exo run` started at the same time on this machine (another test run) cannot hold the CPU against it.
RT_PRIO = int(os.environ.get("EXO_BENCH_RT_PRIO", "90"))
WARMUP_S = 0.5

SLEEP_ABSOLUTE = "clock_nanosleep"   # firmware_bridge.clock.MonotonicClock: clock_nanosleep(TIMER_ABSTIME)
SLEEP_RELATIVE = "time.sleep"        # time.sleep(deadline - now), recomputed every cycle


class RelativeSleepClock:
    """The plain-Python reference: ``time.sleep`` of the time left to the same absolute deadline.

    Deadlines are still ``t0 + k * period`` (so it does not drift); only the sleep differs from
    ``MonotonicClock``: a *relative* sleep, computed a few hundred ns before it starts.
    """

    absolute_sleep = False

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining * 1e-9)


def _run_delay_ns() -> int:
    """Time this thread spent runnable but waiting for a CPU (``/proc/thread-self/schedstat``), ns."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def foreign_rt_tasks(exclude_pids: set[int]) -> set[tuple[int, str, str, int, int]]:
    """User threads with a real-time policy (FIFO/RR) now: (pid, comm, policy, priority, last CPU).

    Kernel threads (migration/N, ...) and ``exclude_pids`` (our own measurement) are left out.
    Another program's real-time thread on the loop's CPU is the usual cause of a stall on a
    shared development machine, so the table says when there was one.
    """
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in exclude_pids:
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            comm = raw[raw.find("(") + 1: raw.rfind(")")]
            rest = raw[raw.rfind(")") + 2:].split()
            try:  # field n of proc(5) is rest[n - 3]
                flags, cpu, rt_prio, policy = int(rest[6]), int(rest[36]), int(rest[37]), int(rest[38])
            except (IndexError, ValueError):
                continue
            if flags & 0x00200000:  # PF_KTHREAD
                continue
            if policy in (1, 2):    # SCHED_FIFO, SCHED_RR
                found.add((int(pid), comm, "FIFO" if policy == 1 else "RR", rt_prio, cpu))
    return found


def _noop(info) -> None:  # the step: nothing, so only the wake-up is measured
    return None


def _measure(case: dict[str, Any]) -> dict[str, Any]:
    from firmware_bridge.clock import MonotonicClock
    from runtime.core.executor import FixedRateLoop
    from runtime.core.realtime import apply_realtime

    rt = apply_realtime(sched_fifo=case["sched_fifo"], priority=case["priority"], cpus=[case["loop_cpu"]],
                        lock_memory=True)
    clock = MonotonicClock() if case["sleep"] == SLEEP_ABSOLUTE else RelativeSleepClock()
    rate = float(case["rate_hz"])
    duration_s = float(case["duration_s"])
    capacity = int(duration_s * rate * 1.1) + 1024  # every sample kept: percentiles over the whole run
    # Warm-up (not recorded): first-call costs of ctypes, numpy and the loop itself, page faults.
    FixedRateLoop("warmup", rate, clock, stats_capacity=1024).run(_noop, duration_s=case["warmup_s"])
    loop = FixedRateLoop(case["name"], rate, clock, stats_capacity=capacity)
    delay0 = _run_delay_ns()
    rep = loop.run(_noop, duration_s=duration_s)
    delay1 = _run_delay_ns()
    samples = loop.lateness.samples()
    policy_after = os.sched_getscheduler(0)
    lat = rep.lateness
    return {
        "realtime": rt.as_dict(),
        "sched_fifo_granted": rt.sched_fifo and policy_after == os.SCHED_FIFO,
        "absolute_sleep": bool(getattr(clock, "absolute_sleep", False)),
        "cpus_loop": sorted(os.sched_getaffinity(0)),
        "cycles": rep.cycles,
        "missed": rep.missed,
        "overruns": rep.overruns,
        "deadlines": rep.cycles + rep.missed,
        "expected_deadlines": rep.expected_cycles,  # round(elapsed * rate), elapsed as the loop saw it
        "elapsed_s": rep.elapsed_s,
        "samples": int(samples.size),
        "lateness_count": lat.count,
        "lateness_p50_ms": lat.p50_s * 1e3,
        "lateness_p99_ms": lat.p99_s * 1e3,
        "lateness_p999_ms": float(np.percentile(samples, 99.9)) * 1e3 if samples.size else float("nan"),
        "lateness_max_ms": lat.max_s * 1e3,
        "lateness_mean_ms": lat.mean_s * 1e3,
        "lateness_min_ms": float(samples.min()) * 1e3 if samples.size else float("nan"),
        "over_0p5ms": int((samples > 0.5e-3).sum()),
        "over_1ms": int((samples > 1e-3).sum()),
        "run_queue_wait_ms": (delay1 - delay0) * 1e-6 if delay0 >= 0 and delay1 >= 0 else float("nan"),
        "clock_resolution_ns": int(round(time.clock_getres(time.CLOCK_MONOTONIC) * 1e9)),
    }


def measure(conn, case: dict[str, Any]) -> None:
    """Child entry point: measure one case and send the summary (or the traceback) through ``conn``."""
    try:
        result = _measure(case)
    except BaseException:  # noqa: BLE001 - everything goes back to the parent, which fails the test
        result = {"error": traceback.format_exc()}
    conn.send(result)
    conn.close()


def spin(cpu: int, ready, stop, conn) -> None:
    """Child entry point: spin pure Python on ``cpu`` until ``stop``; report CPU time used."""
    os.sched_setaffinity(0, {cpu})
    ready.set()
    t0, c0 = time.monotonic(), time.process_time()
    x = 0
    while not stop.is_set():
        for _ in range(100_000):   # ~3-5 ms of pure Python between checks of the event
            x += 1
    conn.send({"load_cpu": cpu, "load_wall_s": time.monotonic() - t0, "load_cpu_s": time.process_time() - c0})
    conn.close()


def cpu_plan(load: str) -> tuple[int, int | None]:
    """(loop CPU, load CPU or None) for ``load`` in idle / same_core / other_core.

    The loop runs on the highest-numbered CPU available to us; "other_core" puts the load on
    the lowest one. Raises LookupError when "other_core" is impossible (one CPU).
    """
    cpus = sorted(os.sched_getaffinity(0))
    loop_cpu = cpus[-1]
    if load == "idle":
        return loop_cpu, None
    if load == "same_core":
        return loop_cpu, loop_cpu
    if load == "other_core":
        if len(cpus) < 2:
            raise LookupError(f"only CPU(s) {cpus} available: no other core to load")
        return loop_cpu, cpus[0]
    raise ValueError(f"unknown load {load!r}")


def _sample_rt(exclude_pids: set[int], stop: threading.Event, found: set, every_s: float = 0.5) -> None:
    """Sampler thread in the pytest process (SCHED_OTHER): real-time threads of other programs."""
    while True:
        found |= foreign_rt_tasks(exclude_pids)
        if stop.wait(every_s):
            return


def run_case(case: dict[str, Any], timeout_margin_s: float = 60.0) -> dict[str, Any]:
    """In the pytest process: start the load (if any), run ``measure`` in a fresh spawned process."""
    ctx = mp.get_context("spawn")
    loop_cpu, load_cpu = cpu_plan(case["load"])
    case = dict(case, loop_cpu=loop_cpu, load_cpu=load_cpu)
    load_proc = load_rx = stop = None
    load_info: dict[str, Any] = {}
    sampler, sampler_stop, foreign = None, threading.Event(), set()
    try:
        if load_cpu is not None:
            ready, stop = ctx.Event(), ctx.Event()
            load_rx, load_tx = ctx.Pipe(duplex=False)
            load_proc = ctx.Process(target=spin, args=(load_cpu, ready, stop, load_tx), name="bench-load", daemon=True)
            load_proc.start()
            load_tx.close()
            if not ready.wait(30.0):
                raise RuntimeError("load process did not start within 30 s")
            time.sleep(0.2)  # let it reach full speed
        rx, tx = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=measure, args=(tx, case), name=f"bench-{case['name']}", daemon=True)
        t_start = time.monotonic()
        proc.start()
        tx.close()
        own = {os.getpid(), proc.pid} | ({load_proc.pid} if load_proc is not None else set())
        sampler = threading.Thread(target=_sample_rt, args=(own, sampler_stop, foreign), daemon=True)
        sampler.start()
        timeout = case["warmup_s"] + case["duration_s"] + timeout_margin_s
        try:
            if not rx.poll(timeout):
                raise RuntimeError(f"measurement process sent nothing within {timeout:.0f} s")
            result = rx.recv()
        except EOFError:
            proc.join(5.0)
            raise RuntimeError(f"measurement process died without a result (exit code {proc.exitcode})") from None
        finally:
            proc.join(10.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(5.0)
        wall_s = time.monotonic() - t_start
    finally:
        sampler_stop.set()
        if sampler is not None:
            sampler.join(5.0)
        if load_proc is not None:
            stop.set()
            if load_rx.poll(10.0):
                try:
                    load_info = load_rx.recv()
                except EOFError:
                    pass
            load_proc.join(5.0)
            if load_proc.is_alive():
                load_proc.terminate()
                load_proc.join(5.0)
    if "error" in result:
        raise RuntimeError(f"measurement process failed:\n{result['error']}")
    out = {k: v for k, v in case.items()}
    out.update(result)
    out["wall_s"] = wall_s
    out["foreign_rt_tasks"] = sorted(foreign)
    out["foreign_rt_on_loop_cpu"] = sorted({(pid, comm, pol, prio) for pid, comm, pol, prio, cpu in foreign
                                            if cpu == loop_cpu})
    if load_info:
        out["load_cpu_fraction"] = load_info["load_cpu_s"] / max(load_info["load_wall_s"], 1e-9)
    return out
