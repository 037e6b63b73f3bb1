"""The HIL plant as a process: emulated AK drives on a CAN bus, the knee plant, in real time.

::

    unshare -n sh -c 'ip link set lo up && ip route add 239.0.0.0/8 dev lo && exec \\
        .venv/bin/python -m hil.plant_process --interface udp_multicast --channel 239.0.0.1 \\
        --motor AK80-9:V2:1:+1:0.0 --duration 5 \\
        --fault '"'"'{"at_s":2,"until_s":3,"silent":true}'"'"' --status out.json'

The loop runs the rig (:class:`hil.ak_emulator.HilRig`) on absolute deadlines
``t0 + k/rate_hz`` of ``time.monotonic_ns()``: it sleeps with ``clock_nanosleep(CLOCK_MONOTONIC,
TIMER_ABSTIME)`` called through ctypes (falling back to ``time.sleep`` of the remaining time
where libc has no such call), with the thread's timer slack set to 1 ns.  At each deadline
it applies the faults scheduled for that time, services the bus, and steps the plant one
period (a deadline missed by whole periods steps the plant for each of them, so plant time
keeps up with the clock; they are counted as ``missed_ticks``).  Between deadlines, where
the bus has a file descriptor (udp_multicast, socketcan), it waits on it with ``select`` and
answers a command as soon as it arrives, as a drive does (``reply_mode="immediate"``); on
buses without one (virtual) replies go out at the next tick (``"tick"``).  Delayed replies
(fault injection) are sent when due.

The plant (``--plant``): ``rigid`` (:class:`hil.knee_plant.SimulatedKneePlant`) or ``cuff`` (the knee behind the
reduced-order cuff fitted to flexcomp, :class:`hil.cuff_rom.RomCuffKneePlant`: 50-130 us per tick, p50-p99, where
the full flexcomp takes 2.5 ms and its coarse 3 x 3 x 2 mesh 0.5 ms). ``--priority`` / ``--cpus`` /
``--lock-memory``: SCHED_FIFO, pinning and mlockall (:mod:`hil.plant_realtime`). Every status reports the missed
ticks (count and % of the deadlines), the wake-up lateness percentiles (us) and the tick cost (us).

It ends after ``duration_s`` or on SIGTERM/SIGINT, shuts the bus down and writes a JSON
status (also at start and once a second while running) to ``status_path``.

Network rule: python-can's ``udp_multicast`` sends IPv4/IPv6 multicast.  :func:`run_plant`
refuses it unless this process is in a network namespace whose only interface is ``lo``
(:func:`firmware_bridge.netns.require_private_netns`, which lists the *calling process's*
interfaces with ``socket.if_nameindex()``, not ``/sys/class/net``: after ``unshare -n``
without remounting sysfs, ``/sys/class/net`` still lists the host's interfaces).  The bus is
opened by :func:`firmware_bridge.bus.open_bus`, the sleep is
:class:`firmware_bridge.clock.MonotonicClock` (``wake_on_signal=True``).

Imports: python-can, numpy, :mod:`firmware_bridge`, :mod:`hil` (nothing from runtime/).
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import select
import signal
import sys
import threading
import time
from array import array
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import can
import numpy as np

from firmware_bridge import netns as _netns
from firmware_bridge.bus import DEFAULT_UDP_PORT, open_bus
from firmware_bridge.clock import MonotonicClock, set_timer_slack_ns
from firmware_bridge.motor_tables import limits_for
from firmware_bridge.netns import PrivateNetnsRequired
from firmware_bridge.netns import interfaces as network_interfaces

from .ak_emulator import EmulatedAkDrive, FaultInjection, HilRig, ThermalParams
from .knee_plant import KneePlantParams, SimulatedKneePlant
from .plant_realtime import apply_plant_realtime

__all__ = [
    "PrivateNetnsRequired",
    "network_interfaces",
    "require_private_netns",
    "parse_motor",
    "run_plant",
    "make_plant",
    "PLANT_MODELS",
    "main",
    "DEFAULT_UDP_PORT",
]

NETNS_HOWTO = (
    "run it inside a private network namespace: unshare -n sh -c 'ip link set lo up && "
    "ip route add 239.0.0.0/8 dev lo && exec python -m hil.plant_process --interface "
    "udp_multicast ...' (as root)"
)


def require_private_netns(interfaces: Sequence[str] | None = None) -> None:
    """Raise :class:`PrivateNetnsRequired` unless the only network interface is ``lo``
    (:func:`firmware_bridge.netns.require_private_netns` with this command's how-to)."""
    _netns.require_private_netns(interfaces, what="udp_multicast", howto=NETNS_HOWTO)


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------


def parse_motor(text: str) -> dict[str, Any]:
    """``MODEL:FIRMWARE:MOTOR_ID:DIRECTION:OFFSET_RAD`` -> motor dict (``AK80-9:V2:1:+1:0.0``)."""
    parts = text.split(":")
    if len(parts) != 5:
        raise ValueError(f"--motor {text!r}: expected MODEL:FIRMWARE:MOTOR_ID:DIRECTION:OFFSET_RAD")
    model, fw, mid, direction, offset = parts
    try:
        return {"model": model, "firmware": fw, "motor_id": int(mid, 0),
                "direction": int(float(direction)), "offset": float(offset)}
    except ValueError as e:
        raise ValueError(f"--motor {text!r}: {e}") from None


def _check_faults(faults: Sequence[Mapping[str, Any]], motor_ids: set[int]) -> list[dict[str, Any]]:
    out = []
    for i, f in enumerate(faults):
        f = dict(f)
        at = f.pop("at_s", 0.0)
        until = f.pop("until_s", None)
        mid = f.pop("motor_id", None)
        if not isinstance(at, (int, float)) or isinstance(at, bool) or not math.isfinite(at) or at < 0:
            raise ValueError(f"faults[{i}].at_s={at!r}: must be a number >= 0")
        if until is not None and (isinstance(until, bool) or not isinstance(until, (int, float))
                                  or not until > at):
            raise ValueError(f"faults[{i}].until_s={until!r}: must be > at_s={at!r} (or absent)")
        if mid is not None and mid not in motor_ids:
            raise ValueError(f"faults[{i}].motor_id={mid!r}: allowed {sorted(motor_ids)} or absent (all)")
        try:
            FaultInjection.from_mapping(f)  # validates names and values
        except (TypeError, ValueError) as e:
            raise ValueError(f"faults[{i}]: {e} (and at_s, until_s, motor_id)") from None
        out.append({"at_s": float(at), "until_s": None if until is None else float(until),
                    "motor_id": mid, "fields": f})
    return out


def _faults_at(schedule: list[dict[str, Any]], t_s: float, motor_id: int) -> FaultInjection:
    merged: dict[str, Any] = {}
    for f in schedule:
        if f["at_s"] <= t_s and (f["until_s"] is None or t_s < f["until_s"]) and (
            f["motor_id"] is None or f["motor_id"] == motor_id
        ):
            merged.update(f["fields"])
    return FaultInjection(**merged)


def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)


class _LatenessHistogram:
    """Wake-up lateness in 1 us bins up to 20 ms (one overflow bin); O(1) per tick, bounded
    memory, percentiles in O(bins) -- cheap enough for the once-a-second status."""

    BINS = 20_000

    def __init__(self) -> None:
        self.counts = array("q", bytes(8 * (self.BINS + 1)))
        self.n = 0
        self.max_ns = 0

    def add(self, late_ns: int) -> None:
        late_ns = max(0, late_ns)
        self.counts[min(late_ns // 1000, self.BINS)] += 1
        self.n += 1
        if late_ns > self.max_ns:
            self.max_ns = late_ns

    def summary_us(self) -> dict[str, float]:
        if not self.n:
            return {"p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0, "n": 0}
        cum = np.cumsum(np.frombuffer(self.counts, dtype=np.int64))
        def pct(q: float) -> float:  # upper edge of the bin holding the q-quantile
            return float(np.searchsorted(cum, q * self.n, side="left") + 1)
        return {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
                "max": self.max_ns / 1e3, "n": self.n}


# ---------------------------------------------------------------------------------------
# the plant
# ---------------------------------------------------------------------------------------

PLANT_MODELS = ("rigid", "cuff")


def make_plant(model: str, *, body_mass_kg: float, height_m: float, dt_s: float, initial_flexion_rad: float,
               cuff_model: Path | str | None = None, swing: tuple[float, float, float] | None = None) -> Any:
    """The knee the drives push: ``rigid`` (:class:`~hil.knee_plant.SimulatedKneePlant`, MuJoCo at <= 1 ms steps) or
    ``cuff`` (:class:`~hil.cuff_rom.RomCuffKneePlant`, the reduced-order cuff fitted to flexcomp; its artefact is
    ``cuff_model`` or :data:`hil.cuff_rom.ROM_ARTIFACT_PATH`). ``swing``: the leg's own swing (cadence Hz, flexion
    min and max rad; None: :class:`~hil.knee_plant.KneePlantParams`' defaults)."""
    if model not in PLANT_MODELS:
        raise ValueError(f"plant model = {model!r}: allowed {', '.join(PLANT_MODELS)}")
    substeps = max(1, math.ceil(dt_s / 0.001 - 1e-9))
    knee = KneePlantParams(body_mass_kg=body_mass_kg, height_m=height_m, timestep_s=dt_s / substeps)
    if swing is not None:
        cadence, lo, hi = (float(x) for x in swing)
        if not (0.0 < cadence <= 3.0 and lo < hi):
            raise ValueError(f"swing = {swing!r}: cadence 0 < Hz <= 3 and flexion min < max (rad)")
        knee = replace(knee, cadence_hz=cadence, flexion_min_rad=lo, flexion_max_rad=hi)
    if model == "rigid":
        return SimulatedKneePlant(knee, initial_flexion_rad=initial_flexion_rad)
    from .cuff_rom import ROM_ARTIFACT_PATH, RomCuffKneePlant, load_rom

    rom, _doc = load_rom(cuff_model or ROM_ARTIFACT_PATH)
    return RomCuffKneePlant(rom, knee, initial_flexion_rad=initial_flexion_rad,
                            substeps=max(1, math.ceil(dt_s / 1e-4 - 1e-9)))


def _check_run_args(duration_s: float, rate_hz: float, reply_mode: str, motors: Sequence[Mapping[str, Any]]) -> None:
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s={duration_s!r}: must be > 0")
    if not (isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and 1.0 <= rate_hz <= 20000.0):
        raise ValueError(f"rate_hz={rate_hz!r}: allowed 1..20000")
    if reply_mode not in ("auto", "immediate", "tick"):
        raise ValueError(f"reply_mode={reply_mode!r}: allowed auto, immediate, tick")
    if not motors:
        raise ValueError("motors: need at least one")


def _drive_specs(motors: Sequence[Mapping[str, Any]], thermal: ThermalParams, zero_silence_s: float) -> list:
    specs = []
    for m in motors:
        unknown = set(m) - {"model", "firmware", "motor_id", "direction", "offset"}
        if unknown:
            raise ValueError(f"motor {dict(m)!r}: unknown keys {sorted(unknown)}")
        drive = EmulatedAkDrive(limits_for(m["model"], m["firmware"]), int(m["motor_id"]),
                                thermal=thermal, zero_silence_s=zero_silence_s)
        specs.append((drive, int(m.get("direction", 1)), float(m.get("offset", 0.0))))
    return specs


def _bus_fd(bus: can.BusABC, interface: str, reply_mode: str) -> int:
    """The bus's file descriptor for immediate replies (-1: none, or ``tick`` mode)."""
    if reply_mode == "tick":
        return -1
    try:
        fd = bus.fileno()
    except (NotImplementedError, AttributeError, OSError):
        fd = -1
    if fd is None or fd < 0:
        if reply_mode == "immediate":
            raise ValueError(f"reply_mode='immediate' needs a bus with a file descriptor; "
                             f"{interface} has none (use 'tick')")
        return -1
    return fd


# ---------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------


class _PlantLoop:
    """The 1 kHz tick on absolute deadlines: faults, bus service, plant step, counters and status."""

    GUARD_NS = 100_000  # stop select()ing this long before a deadline; sleep the rest exactly

    def __init__(self, rig: HilRig, plant: Any, fd: int, period_ns: int, duration_s: float,
                 schedule: list[dict[str, Any]], base: dict[str, Any], status_path: Path | None,
                 stop_event: threading.Event | None, live_faults: dict[str, Any] | None) -> None:
        self.rig, self.plant, self.fd = rig, plant, fd
        self.period_ns, self.dt_s = period_ns, period_ns / 1e9
        self.duration_s = duration_s
        self.schedule, self.base, self.status_path = schedule, base, status_path
        self.stop_event, self.live_faults = stop_event, live_faults
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.clock = MonotonicClock(wake_on_signal=True)  # a signal ends a sleep early: the stop flag is looked at
        self.lateness = _LatenessHistogram()
        self.lateness.summary_us()  # warm numpy's first-call costs up before the clock starts
        self.step_cost = _LatenessHistogram()
        self.worst: list[tuple[int, float]] = [(-1, 0.0)] * 5  # min-heap of the 5 latest wake-ups
        self.ticks = self.missed = 0
        self.t0 = time.monotonic_ns()
        self.t0_wall_ns = time.time_ns()
        self.active_key: tuple | None = None

    def stopping(self) -> bool:
        if self.stop_event is not None and self.stop_event.is_set() and self.stop_reason is None:
            self.stop_reason = "stop_event"
        return self.stop_reason is not None

    def status(self, state: str, full: bool = True) -> dict[str, Any]:
        """``full``: with the trace summary (end of run); the once-a-second status is counters and drive states
        only, so it costs well under a period."""
        rig, plant = self.rig, self.plant
        if full:
            summ = rig.summary()
        else:
            summ = {"stats": rig.stats.to_dict(), "drives": [d.snapshot() for d in rig.drives],
                    "plant": {"plant_time_s": float(plant.time_s), "flexion_rad": plant.flexion_rad}}
        st = summ["stats"]
        expected = self.ticks + self.missed
        return {
            **self.base, "state": state, "stop_reason": self.stop_reason, "error": self.error,
            "t0_monotonic_ns": self.t0, "t0_wall_ns": self.t0_wall_ns,
            "elapsed_s": (time.monotonic_ns() - self.t0) / 1e9,
            "ticks": self.ticks, "missed_ticks": self.missed,
            "missed_ticks_pct": 100.0 * self.missed / expected if expected else 0.0,
            "tick_lateness_us": self.lateness.summary_us(),
            "step_cost_us": self.step_cost.summary_us(),
            "worst_wakeups": [{"at_s": round(t, 4), "late_us": round(ns / 1e3, 1)}
                              for ns, t in sorted(self.worst, reverse=True) if ns >= 0],
            "frames": st["frames_received"], "commands": st["commands_received"], "replies": st["replies_sent"],
            "dropped": st["replies_dropped"], "corrupted": st["replies_corrupted"],
            "silenced": st["replies_silenced"], "error_frames": st["error_frames_sent"],
            "final_temperature_c": {str(d.motor_id): d.temperature_c for d in rig.drives},
            "plant": summ["plant"], "rig": summ,
        }

    def start_status_writer(self) -> None:
        """A thread that writes the once-a-second status: the file write and rename (which can block for ms on a
        busy disk) happen off the tick; the loop only builds the dict (counters, ~100 us)."""
        self._status_cv = threading.Condition()
        self._status_next: dict[str, Any] | None = None
        self._status_stop = False

        def writer() -> None:
            while True:
                with self._status_cv:
                    while self._status_next is None and not self._status_stop:
                        self._status_cv.wait()
                    doc, self._status_next = self._status_next, None
                    if doc is None:
                        return
                _write_json(self.status_path, doc)

        self._status_thread = threading.Thread(target=writer, name="plant-status", daemon=True)
        self._status_thread.start()

    def post_status(self) -> None:
        """Hand the running status to the writer thread (the newest replaces one not yet written)."""
        doc = self.status("running", full=False)
        with self._status_cv:
            self._status_next = doc
            self._status_cv.notify()

    def stop_status_writer(self) -> None:
        if getattr(self, "_status_thread", None) is None:
            return
        with self._status_cv:
            self._status_stop = True
            self._status_cv.notify()
        self._status_thread.join(5.0)

    def write_status(self, state: str, full: bool = True) -> dict[str, Any]:
        st = self.status(state, full)
        if self.status_path is not None:
            _write_json(self.status_path, st)
        return st

    def apply_faults(self, now_ns: int) -> None:
        t_s = (now_ns - self.t0) / 1e9
        live = self.live_faults
        version = live.get("version", 0) if live is not None else 0
        key = (version, tuple(i for i, f in enumerate(self.schedule)
                              if f["at_s"] <= t_s and (f["until_s"] is None or t_s < f["until_s"])))
        if key == self.active_key:
            return
        self.active_key = key
        override = live.get("faults") if live is not None else None
        target = live.get("motor_id") if live is not None else None
        for d in self.rig.drives:
            if override is not None and (target is None or target == d.motor_id):
                d.faults = override
            else:
                d.faults = _faults_at(self.schedule, t_s, d.motor_id)

    def wait(self, deadline: int) -> None:
        """Until ``deadline``: answer frames as they come (immediate mode), send delayed replies when due."""
        rig, fd = self.rig, self.fd
        while not self.stopping():
            now = time.monotonic_ns()
            if now >= deadline:
                return
            nd = rig.next_due_ns()
            if nd is not None and nd <= now:
                rig.service(now)
                continue
            wake = deadline if nd is None else min(deadline, nd)
            if fd >= 0 and wake - now > self.GUARD_NS:
                ready, _, _ = select.select([fd], [], [], (wake - now - self.GUARD_NS) / 1e9)
                if ready:
                    rig.service(time.monotonic_ns())
                continue
            self.clock.sleep_until_ns(wake)

    def tick(self, deadline: int) -> int:
        """One deadline: lateness, faults, bus, plant step(s); returns the whole periods missed."""
        rig = self.rig
        now = time.monotonic_ns()
        late = now - deadline
        self.lateness.add(late)
        if late > self.worst[0][0]:
            heapq.heapreplace(self.worst, (late, (now - self.t0) / 1e9))
        behind = late // self.period_ns
        self.apply_faults(now)
        rig.service(now)
        rig.step(self.dt_s)
        for _ in range(behind):  # plant time keeps up with the clock
            rig.step(self.dt_s)
        self.step_cost.add(time.monotonic_ns() - now)
        self.missed += behind
        self.ticks += 1
        return behind

    def run(self, on_ready: Callable[[], None] | None) -> None:
        self.apply_faults(self.t0)
        if self.status_path is not None:
            self.write_status("running", full=False)
        if on_ready is not None:
            on_ready()
        # the clock (and the fault schedule) starts now, after the start-up writes
        self.t0, self.t0_wall_ns = time.monotonic_ns(), time.time_ns()
        end_ns = self.t0 + int(round(self.duration_s * 1e9))
        next_status = self.t0 + 1_000_000_000
        if self.status_path is not None:
            self.start_status_writer()
        k = 0
        while not self.stopping():
            deadline = self.t0 + k * self.period_ns
            if deadline >= end_ns:
                self.stop_reason = "duration"
                break
            self.wait(deadline)
            if self.stopping():
                break
            k += 1 + self.tick(deadline)
            if self.status_path is not None and time.monotonic_ns() >= next_status:
                next_status += 1_000_000_000
                self.post_status()


def run_plant(
    interface: str,
    channel: str,
    *,
    motors: Sequence[Mapping[str, Any]],
    duration_s: float,
    rate_hz: float = 1000.0,
    faults: Sequence[Mapping[str, Any]] = (),
    status_path: Path | str | None = None,
    body_mass_kg: float = 75.0,
    height_m: float = 1.80,
    port: int = DEFAULT_UDP_PORT,
    seed: int = 0,
    reply_mode: str = "auto",
    trace_path: Path | str | None = None,
    thermal: ThermalParams = ThermalParams(),
    zero_silence_s: float = 1.2,
    initial_flexion_rad: float = 0.9,
    on_ready: Callable[[], None] | None = None,
    stop_event: threading.Event | None = None,
    live_faults: dict[str, Any] | None = None,
    plant_model: str = "rigid",
    cuff_model: Path | str | None = None,
    priority: int | None = None,
    cpus: Sequence[int] | None = None,
    lock_memory: bool = False,
    swing: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    """Run the HIL plant in real time; returns the final status dict (also written to ``status_path``).

    ``motors``: dicts ``model``, ``firmware``, ``motor_id``, ``direction`` (+1/-1), ``offset`` (rad; shaft =
    direction * joint + offset).  ``faults``: dicts ``at_s``, ``until_s`` (optional: to the end), ``motor_id``
    (optional: all drives) and :class:`~hil.ak_emulator.FaultInjection` fields; overlapping entries merge, later
    wins.  ``reply_mode``: ``"immediate"`` (answer on arrival; needs a bus fd), ``"tick"`` (answer at the next
    period) or ``"auto"``.  ``plant_model``: ``rigid`` or ``cuff`` (:func:`make_plant`).  ``priority`` /
    ``cpus`` / ``lock_memory``: SCHED_FIFO priority, CPU pinning and mlockall
    (:func:`hil.plant_realtime.apply_plant_realtime`; None/False: as started).  The status counts missed ticks (whole periods late; count and %) and the wake-up lateness
    percentiles (us).  SIGTERM/SIGINT stop the loop (handlers are installed when called from the main thread);
    so does ``stop_event``.
    """
    _check_run_args(duration_s, rate_hz, reply_mode, motors)
    if interface == "udp_multicast":
        require_private_netns()  # before anything else (checked again right before opening)
    status_path = None if status_path is None else Path(status_path)
    period_ns = int(round(1e9 / rate_hz))
    dt_s = period_ns / 1e9
    plant = make_plant(plant_model, body_mass_kg=body_mass_kg, height_m=height_m, dt_s=dt_s,
                       initial_flexion_rad=initial_flexion_rad, cuff_model=cuff_model, swing=swing)
    drive_specs = _drive_specs(motors, thermal, zero_silence_s)
    schedule = _check_faults(faults, {d.motor_id for d, _, _ in drive_specs})
    rt = apply_plant_realtime(priority, cpus, lock_memory)
    loop: _PlantLoop | None = None
    old_handlers: dict[int, Any] = {}

    def _on_signal(signum, _frame):
        if loop is not None:
            loop.stop_reason = f"signal:{signal.Signals(signum).name}"

    # udp_multicast: refused outside a private netns (checked again right before opening)
    bus = open_bus(interface, channel, port=port, receive_own_messages=False, fd=False, netns_howto=NETNS_HOWTO)
    try:
        rig = HilRig(bus, drive_specs, plant, rate_hz=1.0 / dt_s, seed=seed)
        fd = _bus_fd(bus, interface, reply_mode)
        base = {
            "pid": os.getpid(), "interface": interface, "channel": channel,
            "port": port if interface == "udp_multicast" else None, "plant_model": plant_model,
            **_static_status(plant, period_ns, duration_s, fd, rt), "motors": [dict(m) for m in motors],
            "faults": [dict(f) for f in faults],
        }
        loop = _PlantLoop(rig, plant, fd, period_ns, duration_s, schedule, base, status_path, stop_event, live_faults)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                old_handlers[sig] = signal.signal(sig, _on_signal)
    except BaseException:
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        bus.shutdown()
        raise
    try:
        loop.run(on_ready)
    except Exception as e:  # noqa: BLE001 - recorded in the status, then re-raised
        loop.error = f"{type(e).__name__}: {e}"
        raise
    finally:
        loop.stop_status_writer()   # its last running status must not land after the final one
        pending_at_stop = rig.pending_replies  # delayed replies not yet due: never sent
        bus.shutdown()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        result = loop.status("error" if loop.error else "done")
        result["replies_pending_at_stop"] = pending_at_stop
        if status_path is not None:
            _write_json(status_path, result)
        if trace_path is not None:
            _write_trace(trace_path, rig, plant)
    return result


def _static_status(plant: Any, period_ns: int, duration_s: float, fd: int, rt: dict[str, Any]) -> dict[str, Any]:
    """The status fields fixed at start: the leg's swing, rate, reply mode, sleep call and real-time settings."""
    p = plant.params
    return {"swing": {"cadence_hz": p.cadence_hz, "flexion_min_rad": p.flexion_min_rad,
                      "flexion_max_rad": p.flexion_max_rad},
            "rate_hz": 1e9 / period_ns, "duration_s": duration_s, "reply_mode": "immediate" if fd >= 0 else "tick",
            "sleep": "clock_nanosleep(ctypes)" if MonotonicClock().absolute_sleep else "time.sleep",
            "timer_slack_1ns": set_timer_slack_ns(1), "realtime": rt}


def _write_trace(path: Path | str, rig: HilRig, plant: Any) -> None:
    """The rig's per-step trace, and the plant's own (``plant_*``: leg angle, delivered torque, ...) when it has
    one; plant times are s after the loop's start (``t0_monotonic_ns`` in the status)."""
    out = dict(rig.trace())
    if hasattr(plant, "trace"):
        out.update({f"plant_{k}": v for k, v in plant.trace().items()})
    np.savez(path, **out)


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hil.plant_process",
        description="Emulated AK drives (MIT mode) on a CAN bus driving the simulated knee, in "
                    "real time.  For udp_multicast, " + NETNS_HOWTO + ".",
    )
    ap.add_argument("--interface", required=True, help="python-can interface (udp_multicast, virtual, socketcan)")
    ap.add_argument("--channel", required=True, help="e.g. 239.0.0.1 for udp_multicast, vcan0")
    ap.add_argument("--port", type=int, default=DEFAULT_UDP_PORT, help="UDP port (udp_multicast)")
    ap.add_argument("--motor", action="append", required=True, type=parse_motor,
                    metavar="MODEL:FW:ID:DIR:OFFSET", help="e.g. AK80-9:V2:1:+1:0.0 (repeatable)")
    ap.add_argument("--duration", type=float, required=True, help="s")
    ap.add_argument("--rate", type=float, default=1000.0, help="Hz (default 1000)")
    ap.add_argument("--fault", action="append", default=[], type=json.loads,
                    metavar="JSON", help='e.g. \'{"at_s":2,"until_s":3,"silent":true}\' (repeatable)')
    ap.add_argument("--status", type=Path, default=None, help="JSON status/result file")
    ap.add_argument("--trace", type=Path, default=None, help="per-step trace (.npz)")
    ap.add_argument("--body-mass", type=float, default=75.0, help="kg")
    ap.add_argument("--height", type=float, default=1.80, help="m")
    ap.add_argument("--seed", type=int, default=0, help="fault RNG seed")
    ap.add_argument("--reply-mode", choices=("auto", "immediate", "tick"), default="auto")
    ap.add_argument("--plant", choices=("rigid", "cuff"), default="rigid",
                    help="rigid seated knee, or the knee behind the reduced-order cuff (hil/cuff_rom.py)")
    ap.add_argument("--cuff-model", type=Path, default=None, help="cuff plant artefact (default hil/artifacts/cuff_rom_v1.json)")
    ap.add_argument("--priority", type=int, default=None, help="SCHED_FIFO priority 1..98 (default: as started)")
    ap.add_argument("--cpus", type=lambda t: [int(c) for c in t.split(",")], default=None,
                    help="CPU affinity, e.g. 0 or 0,1 (default: as started)")
    ap.add_argument("--lock-memory", action="store_true", help="mlockall (no page-fault stalls)")
    ap.add_argument("--swing", type=lambda t: tuple(float(x) for x in t.split(",")), default=None,
                    metavar="HZ,MIN,MAX", help="the leg's own swing: cadence Hz, flexion min and max rad")
    ap.add_argument("--zero-silence", type=float, default=1.2, help="s without replies after ZERO")
    ap.add_argument("--control-stdin", action="store_true",
                    help='read JSON lines {"faults": {...} | null, "motor_id": N | null} from stdin: live fault '
                         'injection on the host\'s clock; EOF leaves the last state')
    args = ap.parse_args(argv)
    live: dict[str, Any] | None = None
    if args.control_stdin:
        live = {"version": 0, "faults": None, "motor_id": None}

        def _read_control() -> None:
            for line in sys.stdin:
                line = line.strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                    faults = msg.get("faults")
                    inj = FaultInjection.from_mapping(faults) if faults else None
                    motor = msg.get("motor_id")
                except (ValueError, TypeError, AttributeError) as e:
                    print(json.dumps({"event": "control_rejected", "line": line[:200], "error": str(e)}), flush=True)
                    continue
                live.update(faults=inj, motor_id=motor)
                live["version"] += 1   # published last: the loop re-applies on a new version
                print(json.dumps({"event": "control", "faults": faults, "motor_id": motor}), flush=True)

        threading.Thread(target=_read_control, name="plant-control", daemon=True).start()

    def ready() -> None:
        print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True)

    try:
        result = run_plant(
            args.interface, args.channel, motors=args.motor, duration_s=args.duration,
            rate_hz=args.rate, faults=args.fault, status_path=args.status,
            body_mass_kg=args.body_mass, height_m=args.height, port=args.port, seed=args.seed,
            reply_mode=args.reply_mode, trace_path=args.trace, zero_silence_s=args.zero_silence,
            on_ready=ready, live_faults=live, plant_model=args.plant, cuff_model=args.cuff_model,
            priority=args.priority, cpus=args.cpus, swing=args.swing,
            lock_memory=args.lock_memory,
        )
    except PrivateNetnsRequired as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except can.CanInitializationError as e:
        cause = f" ({e.__cause__})" if e.__cause__ else ""
        hint = (" -- inside the namespace run 'ip link set lo up && ip route add 239.0.0.0/8 dev lo' "
                "first" if args.interface == "udp_multicast" else "")
        print(f"error: cannot open {args.interface} {args.channel}: {e}{cause}{hint}", file=sys.stderr)
        return 2
    print(json.dumps({"event": "done", "stop_reason": result["stop_reason"], "ticks": result["ticks"],
                      "missed_ticks": result["missed_ticks"], "missed_ticks_pct": round(result["missed_ticks_pct"], 3),
                      "lateness_p99_us": result["tick_lateness_us"]["p99"], "replies": result["replies"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
