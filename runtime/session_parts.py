"""The parts a run (``runtime.session.RunSession``) is built from, each a context manager that cleans up exactly what
it started, so that ``RunSession.run`` joins them with one ``contextlib.ExitStack`` and every exit path (the end
of the run, a signal, a failed start, a stage that raised) unwinds them in the reverse order:

* :class:`SharedChannels`: the shared-memory command buffer, control block and record / event / CAN rings;
* :class:`SignalHandlers`: the process's signal handlers while the run owns them;
* :class:`PlantCompanion`: the HIL plant process (``runtime.control.companion.CompanionProcess``), if any;
* :class:`TelemetryDrain`: the thread that moves torque-loop records, CAN frames and safety events into the log;
* :class:`TorqueProcess`: the torque loop in its own spawned process; on exit it asks for the fade to zero,
  waits for the process (terminating it if it does not stop) and keeps the result it sent back;
* :class:`PipelineStages`: the estimation pipeline; on exit its stages close what they started (the vision process).

Errors found while cleaning up are appended to the run's ``errors`` list (a run reports, it never crashes on the
way out). Times: monotonic ns unless the name says otherwise; ``offset_ns`` turns them into wall-clock log times.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any, Self, TypeVar

from runtime.control.companion import CompanionProcess
from runtime.control.torque_loop import TorqueProcessSpec, torque_process_main
from runtime.core.channels import CAN_FRAME_DTYPE, EVENT_DTYPE, Slot, command_dtype, torque_record_dtype
from runtime.core.shared_memory import ControlBlock, LatestValueBuffer, RecordRing
from runtime.pipeline.frame import Stage
from runtime.pipeline.stages import Pipeline
from runtime.session_topics import T_CAN, T_FAULTS, T_JOINT_STATES, T_TQ_COMMAND, T_TQ_TIMING
from runtime.telemetry.log import TelemetryLog

#: Seconds of torque-loop records (and of CAN frames) the rings hold: the drain empties them every 20 ms.
RING_SECONDS = 8
EVENTS_CAPACITY = 4096
DRAIN_PERIOD_S = 0.02
READY_TIMEOUT_S = 20.0
#: s the torque process gets beyond the fade time to report that it exited, then to be joined.
EXIT_GRACE_S = 3.0

_Channel = TypeVar("_Channel", LatestValueBuffer, ControlBlock, RecordRing)


class SharedChannels:
    """The channels between the estimation process and the torque process, created on enter, closed on exit.

    ``command``: the latest assistance command; ``control``: the control block (requests and state, ``Slot``);
    ``records``: torque-loop records (``RING_SECONDS`` at ``torque_rate_hz``); ``events``: safety events;
    ``can``: tx + rx CAN frames (``RING_SECONDS``, 2x headroom), only for a real bus (``with_can``)."""

    def __init__(self, n_joints: int, torque_rate_hz: float, with_can: bool) -> None:
        self.n_joints = n_joints
        self.records_capacity = int(torque_rate_hz * RING_SECONDS)
        self.can_capacity = int(torque_rate_hz * RING_SECONDS * 4 * n_joints)
        self.with_can = with_can
        self._opened: list[LatestValueBuffer | ControlBlock | RecordRing] = []

    # set by __enter__
    command: LatestValueBuffer
    control: ControlBlock
    records: RecordRing
    events: RecordRing
    can: RecordRing | None

    def __enter__(self) -> Self:
        try:
            self.command = self._keep(LatestValueBuffer(command_dtype(self.n_joints)))
            self.control = self._keep(ControlBlock(Slot.N))
            self.records = self._keep(RecordRing(torque_record_dtype(self.n_joints), self.records_capacity))
            self.events = self._keep(RecordRing(EVENT_DTYPE, EVENTS_CAPACITY))
            self.can = self._keep(RecordRing(CAN_FRAME_DTYPE, self.can_capacity)) if self.with_can else None
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _keep(self, channel: _Channel) -> _Channel:
        self._opened.append(channel)
        return channel

    def _close(self) -> None:
        """Free every channel this part created (also after a failed start)."""
        while self._opened:
            self._opened.pop().close()

    def request_shutdown(self) -> None:
        """Ask the torque loop to fade to zero and stop (unless a stronger request, immediate zero, is already set)."""
        if self.control[Slot.REQ_SHUTDOWN] == 0:
            self.control[Slot.REQ_SHUTDOWN] = 1


class SignalHandlers:
    """Handlers installed with :meth:`install` while the run owns them; exactly those are restored on exit."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        return self

    def install(self, handler: Callable[[int, FrameType | None], None], signals: tuple[int, ...]) -> None:
        for s in signals:
            self._previous[s] = signal.signal(s, handler)

    def __exit__(self, *exc: object) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()


class PlantCompanion:
    """The HIL plant process, started (and waited for ready) on enter, stopped on exit; ``result`` its exit code,
    status file and output tail (None without a companion)."""

    def __init__(self, companion: CompanionProcess | None, progress: Callable[[str], None], errors: list[str]) -> None:
        self.companion = companion
        self.progress = progress
        self.errors = errors
        self.result: dict[str, Any] | None = None

    def __enter__(self) -> Self:
        c = self.companion
        if c is not None:
            self.progress(f"starting {c.name}: {' '.join(c.argv[:4])} ...")
            try:
                c.start()
            except BaseException:
                self._stop(c)
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.companion is not None:
            self._stop(self.companion)

    def _stop(self, c: CompanionProcess) -> None:
        self.result = c.stop()
        if self.result.get("exit_code") not in (0, -15, None):
            self.errors.append(f"{c.name} exited with {self.result.get('exit_code')}: "
                               + " | ".join(self.result.get("output_tail", [])[-3:]))


class TelemetryDrain:
    """A thread moving the torque loop's records, CAN frames and safety events from the rings into ``log`` every
    ``DRAIN_PERIOD_S``; on exit it stops, drains once more and reports records the rings lost. ``faults_seen``:
    the latched faults it saw (``source:kind value=...``)."""

    def __init__(self, channels: SharedChannels, log: TelemetryLog, offset_ns: int, errors: list[str]) -> None:
        self.channels = channels
        self.log = log
        self.offset_ns = offset_ns
        self.errors = errors
        self.faults_seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry-drain", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.drain_once()
        ch = self.channels
        if ch.records.lost:
            self.errors.append(f"telemetry: {ch.records.lost} torque records lost (drain too slow)")
        if ch.can is not None and ch.can.lost:
            self.errors.append(f"telemetry: {ch.can.lost} CAN frames lost (drain too slow)")

    def _run(self) -> None:
        while not self._stop.wait(DRAIN_PERIOD_S):
            self.drain_once()

    def drain_once(self) -> None:
        log, off, ch = self.log, self.offset_ns, self.channels
        for rec in ch.records.drain():
            t = int(rec["start_ns"]) + off
            log.write(T_TQ_TIMING, t, rec)
            log.write(T_TQ_COMMAND, t, rec)
            log.write(T_JOINT_STATES, t, rec)
        if ch.can is not None:
            for fr in ch.can.drain():
                log.write(T_CAN, int(fr["t_ns"]) + off, fr)
        for ev in ch.events.drain():
            log.write(T_FAULTS, int(ev["t_ns"]) + off, ev)
            if ev["latched"]:
                self.faults_seen.append(f"{ev['source'].decode()}:{ev['kind'].decode()} value={float(ev['value']):.4g}")


class TorqueProcess:
    """The torque loop (``runtime.control.torque_loop``) in its own spawned process, started on enter (its pids
    written to ``pids_path``). On exit: fade-and-stop is requested, the process gets ``fade_time_s +
    EXIT_GRACE_S`` to exit, is joined (terminated if it does not stop) and ``result`` holds what it sent back
    (``loop``, ``realtime``, ``latched_faults``, ``error``), or {} if nothing came."""

    def __init__(self, spec: TorqueProcessSpec, channels: SharedChannels, fade_time_s: float, pids_path: Path,
                 errors: list[str]) -> None:
        self.spec = spec
        self.channels = channels
        self.fade_time_s = fade_time_s
        self.pids_path = pids_path
        self.errors = errors
        self.result: dict[str, Any] = {}

    # set by __enter__
    _proc: BaseProcess
    _conn: Connection

    def __enter__(self) -> Self:
        ctx = mp.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=torque_process_main, args=(self.spec, child_conn), name="exo-torque-loop",
                           daemon=False)
        try:
            proc.start()
        except BaseException:
            parent_conn.close()
            child_conn.close()
            raise
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        self.pids_path.write_text(json.dumps({"main": os.getpid(), "torque": proc.pid}))
        return self

    def is_alive(self) -> bool:
        return self._proc.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self._proc.exitcode

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until the torque loop has sent zero torque and runs; RuntimeError if it exits or does not within ``timeout_s``."""
        control = self.channels.control
        t_end = time.monotonic() + timeout_s
        while control[Slot.ST_READY] != 1:
            if not self._proc.is_alive():
                raise RuntimeError(f"torque process exited during start-up (exit code {self._proc.exitcode})")
            if time.monotonic() > t_end:
                raise RuntimeError(f"torque process did not start within {timeout_s:g} s")
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        proc, control = self._proc, self.channels.control
        self.channels.request_shutdown()
        deadline = time.monotonic() + self.fade_time_s + EXIT_GRACE_S
        while proc.is_alive() and control[Slot.ST_EXITED] != 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.join(timeout=EXIT_GRACE_S)
        if proc.is_alive():
            self.errors.append("torque process did not exit after shutdown; terminated")
            proc.terminate()
            proc.join(timeout=2.0)
        if self._conn.poll(0.5):
            try:
                self.result = self._conn.recv()
            except EOFError:
                pass
        self._conn.close()


class PipelineStages:
    """The estimation pipeline, built by ``factory`` on enter; on exit every stage closes what it started (the vision
    process); ``result`` what they reported, by stage name; their errors go to ``errors``."""

    def __init__(self, factory: Callable[..., Pipeline], n_joints: int, assistance_level: float,
                 now_ns: Callable[[], int], extra: list[Stage], errors: list[str]) -> None:
        self._build = (factory, n_joints, assistance_level, now_ns, extra)
        self.errors = errors
        self.pipeline: Pipeline | None = None
        self.result: dict[str, Any] = {}

    def __enter__(self) -> Pipeline:
        factory, n, level, now_ns, extra = self._build
        self.pipeline = factory(n, level, now_ns, extra=extra)
        return self.pipeline

    def __exit__(self, *exc: object) -> None:
        if self.pipeline is None:
            return
        self.result = self.pipeline.close()
        for name, res in self.result.items():
            for e in (res or {}).get("errors", []) if isinstance(res, dict) else []:
                self.errors.append(f"pipeline stage {name}: {e}")
