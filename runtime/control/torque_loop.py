"""The torque/safety loop (default 500 Hz) in its own process.

Each cycle: read the newest assistance command from the shared latest-value
buffer -> the one torque cycle (``controllers.torque_cycle.TorqueCycle``, shared
with the ROS 2 nodes and the HIL host): interpolate between the last two commands,
staleness from the frame's capture time, measured joint state checks, the tissue
compensator when ``assistance.tissue_compensation`` is true, the safety supervisor
(limits, slew, fade) -> drive write -> one telemetry record into a shared ring. Nothing here waits on the
estimation process: it runs in a separate process because the mujoco bindings
and any pure-Python stage hold the GIL (see tests/test_two_rates.py).

``TorqueLoop`` is the loop body and can run in-process with a ``FakeClock``
(deterministic tests); ``torque_process_main`` is the process entry point.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

import numpy as np

from controllers.safety import Fault, FaultKind, SafetyState, SafetySupervisor, fault_kind
from firmware_bridge.clock import Clock, MonotonicClock
from runtime.control.drive import Drive, DriveResult, JointStates
from runtime.core.channels import (
    CAN_FRAME_DTYPE,
    EVENT_DTYPE,
    STATE_CODES,
    Slot,
    command_dtype,
    torque_record_dtype,
)
from runtime.core.config import DeviceConfig
from runtime.core.executor import CycleInfo, FixedRateLoop
from runtime.core.shared_memory import ControlBlock, LatestValueBuffer, RecordRing
from runtime.wiring import torque_cycle_from


class TorqueLoop:
    """One torque-loop cycle per ``step``; owns the supervisor and the drive."""

    def __init__(self, device: DeviceConfig, drive: Drive, clock: Clock, command: LatestValueBuffer,
                 control: ControlBlock, records: RecordRing, events: RecordRing, parent_pid: int | None = None,
                 sensors=None) -> None:
        self.device = device
        self.n = len(device.joints)
        self.drive = drive
        self.clock = clock
        self.command = command
        self.control = control
        self.records = records
        self.events = events
        self.parent_pid = parent_pid
        self.cycle = torque_cycle_from(device)      # ValueError when compensation is on and its artifact is not
        self.supervisor: SafetySupervisor = self.cycle.supervisor
        self.loop = FixedRateLoop("torque", device.torque_loop.rate_hz, clock)
        self._cmd = np.zeros(1, dtype=command_dtype(self.n))
        self._latest_seq = 0
        self._requested = self.cycle.requested
        self._commanded = self.cycle.commanded
        self._sources = [f"drive.{j.name}" for j in device.joints]
        self._states = JointStates.zeros(self.n)
        self._reset_seq = 0
        self._shutdown = 0
        self._ev = np.zeros(1, dtype=EVENT_DTYPE)
        self.finished = False
        self.parent_lost = False
        self._sensor_check = sensors.check if sensors is not None else None
        # cycles whose read/write did not return OK (the reasons reach the supervisor as faults)
        self.drive_read_results = {DriveResult.ERROR.value: 0, DriveResult.DEACTIVATE.value: 0}
        self.drive_write_errors = 0
        self._drive_hold = False  # a DEACTIVATE read holds the loop inactive until REQ_ACTIVE goes 0 and back to 1
        # start-up check of the velocity table against the position derivative (drives that have one)
        self._velocity_check = drive.velocity_check if device.safety.velocity_check_s > 0 else None
        self._vc_next_cycle = int(device.safety.velocity_check_s * device.torque_loop.rate_hz)
        self._vc_last_cycle = self._vc_next_cycle * 5

    # --------------------------------------------------------------------- one cycle
    def step(self, info: CycleInfo) -> None:
        """One cycle: requests, newest command, lifecycle, measured state, supervisor, write, record."""
        clock, sup, stages = self.clock, self.supervisor, self.loop.stages
        now = info.start_ns
        shutdown = self._requests(now)
        have_cmd = self._take_command(now)
        # lifecycle (after a drive's DEACTIVATE, only a new activation request activates again)
        want_active = self.control.slots[Slot.REQ_ACTIVE] == 1 and shutdown == 0
        if not want_active:
            self._drive_hold = False
        if want_active and sup.state is SafetyState.INACTIVE and not sup.latched and have_cmd and not self._drive_hold:
            sup.activate(now)
        elif not want_active and sup.state is SafetyState.ACTIVE:
            sup.deactivate(now, "shutdown requested" if shutdown else "deactivation requested")
        self.cycle.check_age(now)                   # from the frame's capture time
        t1 = clock.now_ns()
        self._measure(info, now)
        t2 = clock.now_ns()
        if shutdown == 2 and sup.state is SafetyState.ACTIVE:  # immediate stop (second Ctrl-C): zero now, no fade
            sup.report_fault(Fault("operator", FaultKind.ESTOP, 2.0, now))
        self.cycle.step(now, zero_now=shutdown == 2)
        t3 = clock.now_ns()
        if self.drive.write(self._commanded, now) is not DriveResult.OK:
            self.drive_write_errors += 1
        t4 = clock.now_ns()
        self._record(info, have_cmd, (now, t1, t2, t3, t4))
        stages.record("read", (t2 - now) * 1e-9)
        stages.record("safety", (t3 - t2) * 1e-9)
        stages.record("write", (t4 - t3) * 1e-9)
        for ev in sup.pop_events():
            self._push_event(ev)
        self._publish_status(now)
        if shutdown == 2 or (shutdown == 1 and sup.fade_complete and sup.state is not SafetyState.ACTIVE):
            self.finished = True
            self.loop.stop()

    def _requests(self, now: int) -> int:
        """Requests from the supervising process (e-stop, fault reset) and the parent watch;
        returns the shutdown level (0 none, 1 fade and stop, 2 immediate)."""
        sup, ctl = self.supervisor, self.control.slots
        if ctl[Slot.REQ_ESTOP]:
            sup.report_fault(Fault("operator", FaultKind.ESTOP, float(ctl[Slot.REQ_ESTOP]), now))
        if ctl[Slot.REQ_RESET_SEQ] != self._reset_seq:
            self._reset_seq = int(ctl[Slot.REQ_RESET_SEQ])
            sup.reset_faults(now)
        shutdown = int(ctl[Slot.REQ_SHUTDOWN])
        if self.parent_pid is not None and os.getppid() != self.parent_pid and not self.parent_lost:
            self.parent_lost = True
            sup.report_fault(Fault("torque_loop", FaultKind.PARENT_LOST, float(self.parent_pid), now))
        if self.parent_lost:
            shutdown = max(shutdown, 1)
        return shutdown

    def _take_command(self, now: int) -> bool:
        """Newest command (never blocks) into the cycle, interpolated into ``self._requested`` (N*m) from the
        previous one over one estimation period; returns whether there is a command."""
        seq = self.command.read(self._cmd)
        if seq > self._latest_seq:
            c = self._cmd[0]
            self.cycle.new_command(int(c["frame_index"]), int(c["capture_ns"]), int(c["write_ns"]), c["torque_nm"],
                                   float(c["knee_rad"]))
            self._latest_seq = seq
        self.cycle.interpolate(now)
        return self.cycle.have_command

    def _measure(self, info: CycleInfo, now: int) -> None:
        """Read the drive, hand its and the sensors' faults to the supervisor, check the joint states."""
        sup = self.supervisor
        result = self.drive.read(self._states, now)
        for source, kind, value, t_seen in self.drive.poll_faults():
            sup.report_fault(Fault(source, fault_kind(kind), float(value), t_seen))
        if result is not DriveResult.OK:
            self.drive_read_results[result.value] += 1
            if result is DriveResult.DEACTIVATE:
                self._drive_hold = True
                if sup.state is SafetyState.ACTIVE:
                    sup.deactivate(now, "the drive asked to deactivate")
        if self._sensor_check is not None:
            for source, kind, value, t_seen in self._sensor_check():
                sup.report_fault(Fault(source, fault_kind(kind), float(value), t_seen))
        st, observe = self._states, self.cycle.observe_joint
        for i in range(self.n):
            observe(i, st.position_rad[i], st.velocity_rad_s[i], now, st.temperature_c[i], st.error_code[i],
                    source=self._sources[i])
        if self._velocity_check is not None and info.index >= self._vc_next_cycle:
            self._run_velocity_check(info.index, now)

    def _record(self, info: CycleInfo, have_cmd: bool, times: tuple[int, int, int, int, int]) -> None:
        """One telemetry record into the shared ring, filled in place; ``times``: cycle start, after the
        command, after the measurement, after the supervisor, after the write (ns)."""
        now, t1, t2, t3, t4 = times
        sup, st, cyc = self.supervisor, self._states, self.cycle
        rec = self.records.slot()[0]
        rec["cycle"] = info.index
        rec["scheduled_ns"] = info.scheduled_ns
        rec["start_ns"] = now
        rec["write_ns"] = t3
        rec["end_ns"] = t4
        rec["missed_total"] = info.missed_total
        rec["state"] = STATE_CODES[sup.state.value]
        rec["stale"] = cyc.stale
        rec["fade_gain"] = sup.fade_gain
        rec["command_frame"] = cyc.command_frame if have_cmd else -1
        rec["command_age_ns"] = t3 - cyc.capture_ns if have_cmd else -1
        rec["requested_nm"] = self._requested
        rec["motor_request_nm"] = cyc.motor_request
        rec["commanded_nm"] = self._commanded
        rec["position_rad"] = st.position_rad
        rec["velocity_rad_s"] = st.velocity_rad_s
        rec["measured_torque_nm"] = st.torque_nm
        rec["stage_read_s"] = (t1 - now + t2 - t1) * 1e-9
        rec["stage_safety_s"] = (t3 - t2) * 1e-9
        rec["stage_write_s"] = (t4 - t3) * 1e-9
        self.records.commit()

    def _publish_status(self, now: int) -> None:
        """State, cycle counts and heartbeat into the control block (read by the supervising process)."""
        sup, ctl = self.supervisor, self.control.slots
        ctl[Slot.ST_STATE] = STATE_CODES[sup.state.value]
        ctl[Slot.ST_CYCLES] = self.loop.cycles + 1
        ctl[Slot.ST_MISSED] = self.loop.missed
        ctl[Slot.ST_HEARTBEAT_NS] = now
        ctl[Slot.ST_LATCHED] = len(sup.latched)

    def _run_velocity_check(self, cycle: int, now: int) -> None:
        """Wrong firmware table (velocity range) shows as a position-derivative/velocity ratio far from 1:
        latched CONFIG fault. Too little motion: retried every second, then logged as inconclusive."""
        outcome = self._velocity_check()
        sup = self.supervisor
        if outcome is None:  # this drive has no velocity-table check
            self._velocity_check = None
            return
        ok, text = outcome
        if ok:
            sup.note(now, f"velocity table check: {text}")
            self._velocity_check = None
        elif "WRONG" in text:
            sup.note(now, f"velocity table check: {text}")
            sup.report_fault(Fault("drive.velocity_table", FaultKind.CONFIG, 0.0, now))
            self._velocity_check = None
        elif cycle >= self._vc_last_cycle:
            sup.note(now, f"velocity table check: {text}")
            self._velocity_check = None
        else:
            self._vc_next_cycle = cycle + int(self.device.torque_loop.rate_hz)

    def _push_event(self, ev) -> None:
        e = self._ev[0]
        e["t_ns"] = ev.t_ns
        e["what"] = ev.what.encode()[:16]
        e["state"] = ev.state.value.encode()[:10]
        f = ev.fault
        e["source"] = (f.source if f else "").encode()[:32]
        e["kind"] = (f.kind.value if f else "").encode()[:24]
        e["value"] = f.value if f else 0.0
        e["latched"] = f is not None
        e["detail"] = ev.detail.encode("utf-8", "replace")[:96]
        self.events.push(self._ev)

    # --------------------------------------------------------------------- whole run
    def run(self, max_cycles: int | None = None) -> dict[str, Any]:
        """Enable the drive at zero torque, loop until shutdown, then final zero and disable."""
        now = self.clock.now_ns()
        zeros = [0.0] * self.n
        self.drive.write(zeros, now)      # zero first: a drive replays its last command on enable
        self.drive.enable(now)
        self.control[Slot.ST_READY] = 1
        try:
            report = self.loop.run(self.step, cycles=max_cycles)
        finally:
            t = self.clock.now_ns()
            self.drive.write(zeros, t)    # final zero-torque frame
            self.drive.disable(t)         # exit motor mode
            for ev in self.supervisor.pop_events():
                self._push_event(ev)
            self.control[Slot.ST_EXITED] = 1
        comp = self.cycle.compensator
        return {**report.as_dict(), "drive_read_not_ok": dict(self.drive_read_results),
                "drive_write_errors": self.drive_write_errors,
                "tissue_compensation": ({"knee_source_cycles": dict(self.cycle.knee_source_cycles)}
                                        if comp is not None else None)}


@dataclass(frozen=True)
class TorqueProcessSpec:
    """Everything the torque process needs, picklable (configs as plain dicts)."""

    device: dict
    body_mass_kg: float
    height_m: float
    command_shm: str
    control_shm: str
    records_shm: str
    records_capacity: int
    events_shm: str
    events_capacity: int
    parent_pid: int
    calibration: dict | None = None
    can_shm: str | None = None
    can_capacity: int = 0


def _can_frame_logger(ring: RecordRing):
    """A frame_log callback writing raw frames into the shared CAN ring (no allocation per frame)."""
    def log(t_ns: int, arbitration_id: int, data: bytes, is_rx: bool, is_error: bool) -> None:
        rec = ring.slot()[0]
        rec["t_ns"] = t_ns
        rec["arbitration_id"] = arbitration_id
        n = min(8, len(data))
        rec["dlc"] = n
        rec["data"][:n] = memoryview(data)[:n]
        rec["data"][n:] = 0
        rec["is_rx"] = is_rx
        rec["is_error"] = is_error
        ring.commit()
    return log


def torque_process_main(spec: TorqueProcessSpec, result_conn=None) -> None:
    """Entry point of the torque process (started with the ``spawn`` method)."""
    from runtime.core.realtime import apply_realtime
    from runtime.report.memory import own_peak_rss_mb
    from runtime.wiring import make_drive

    # The supervising process decides about signals: SIGINT (Ctrl-C to the process group) must not
    # kill this loop before it has faded; SIGTERM to this process alone asks for a fade and stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    device = DeviceConfig.model_validate(spec.device)
    n = len(device.joints)
    command = LatestValueBuffer.attach(spec.command_shm, command_dtype(n))
    control = ControlBlock.attach(spec.control_shm, Slot.N)
    records = RecordRing.attach(spec.records_shm, torque_record_dtype(n), spec.records_capacity)
    events = RecordRing.attach(spec.events_shm, EVENT_DTYPE, spec.events_capacity)
    can_ring = RecordRing.attach(spec.can_shm, CAN_FRAME_DTYPE, spec.can_capacity) if spec.can_shm else None
    frame_log = _can_frame_logger(can_ring) if can_ring is not None and device.telemetry.log_raw_can else None
    signal.signal(signal.SIGTERM, lambda *_: control.__setitem__(Slot.REQ_SHUTDOWN, max(1, control[Slot.REQ_SHUTDOWN])))
    rt = apply_realtime(sched_fifo=device.realtime.sched_fifo, priority=device.realtime.torque_priority,
                        cpus=device.realtime.torque_cpus, lock_memory=device.realtime.lock_memory)
    drive = make_drive(device, spec.calibration, spec.body_mass_kg, spec.height_m, frame_log=frame_log)
    sensors = None
    if device.serial_sensors:
        from runtime.control.sensors import SensorWatch

        sensors = SensorWatch(device.serial_sensors)
    loop = TorqueLoop(device, drive, MonotonicClock(), command, control, records, events, parent_pid=spec.parent_pid,
                      sensors=sensors)
    result: dict[str, Any] = {"realtime": rt.as_dict()}
    try:
        result["loop"] = loop.run()
        result["latched_faults"] = [f"{f.source}:{f.kind.value}={f.value:.4g}" for f in loop.supervisor.latched]
    except BaseException as exc:  # reported to the parent, never lost
        result["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if result_conn is not None:
            result["peak_rss_mb"] = own_peak_rss_mb()  # this process's own VmHWM (ru_maxrss would be the parent's)
            try:
                result_conn.send(result)
            except (BrokenPipeError, OSError):
                pass
        if locals().get("sensors") is not None:
            sensors.close()
        if "drive" in locals():
            drive.close()  # disables it if still enabled, releases the bus (idempotent)
        for ch in (command, control, records, events, can_ring):
            if ch is not None:
                ch.close()
