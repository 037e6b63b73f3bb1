"""Fault-injection matrix: each fault x each controller state, closed loop over CAN frames.

``frozen_camera``: the estimator keeps publishing, every command with the capture time of the last frame before the
injection; the torque loop's staleness counts from capture, so it faults STALE like no command at all.

In process and deterministic: the torque loop (FakeClock) drives an `AkCanDrive` on a python-can
`virtual` bus; on the same bus `hil.ak_emulator.HilRig` emulates the AK drive frame for frame on the
simulated knee. For every case: the commanded torque never exceeds its limit and is finite, reaches
zero within (detection bound + fade time) of the injection, every cycle is in the telemetry ring,
the expected fault is latched when the supervisor was ACTIVE, and at the end the torque on the wire
(what the emulated drive last received) is zero within half a quantum.
"""
import itertools
import math

import can
import numpy as np
import pytest

from firmware_bridge.ak_can import AkCanDrive
from firmware_bridge.ak_mit import quantum
from firmware_bridge.calibration import ActuatorCalibration
from firmware_bridge.motor_tables import limits_for
from hil.ak_emulator import EmulatedAkDrive, FaultInjection, HilRig
from hil.knee_plant import SimulatedKneePlant
from runtime.core.channels import EVENT_DTYPE, STATE_NAMES, Slot, command_dtype, torque_record_dtype
from firmware_bridge.clock import FakeClock
from runtime.core.shared_memory import ControlBlock, LatestValueBuffer, RecordRing
from runtime.control.torque_loop import TorqueLoop

PERIOD_NS = 2_000_000          # 500 Hz
INJECT = 200                   # cycle of injection
CYCLES = 420
ESTOP_ID = 0x7F0
TORQUE_NM = 8.0

# fault -> (expected kinds when ACTIVE, detection bound in s, duration in cycles or None = to the end)
FAULTS = {
    "drive_silent": ({"TIMEOUT"}, 0.05 + 0.006, 40),
    "drive_error_code": ({"DRIVE_ERROR"}, 0.006, None),
    "corrupt_replies": ({"MALFORMED"}, 0.006, None),
    "wrong_reply_id": ({"MALFORMED"}, 0.006, None),
    "error_frames": ({"BUS_ERROR"}, 0.006, 20),
    "bus_off": ({"BUS_OFF"}, 0.006, 20),
    "over_temperature": ({"OVER_TEMPERATURE", "DRIVE_ERROR"}, 0.006, None),
    "enobufs_on_send": ({"BUS_ERROR"}, 0.006, 10),
    "nan_command": ({"NAN"}, 0.02, None),
    "stale_command": ({"STALE"}, 0.1 + 0.006, None),
    "frozen_camera": ({"STALE"}, 0.1 + 0.006, None),      # commands keep coming, all from the same old frame
    "estop_frame": ({"ESTOP"}, 0.006, None),
}
STATES = ["INACTIVE", "RAMPING", "ACTIVE", "FADING"]


class Case:
    def __init__(self, device, calibration, fault, state, channel, host_limits=None):
        self.clock = FakeClock()
        self.dev = device
        self.host_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        self.rig_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        cal = ActuatorCalibration.from_mapping(calibration.actuators[0].model_dump())
        self.limits = limits_for(cal.model, cal.firmware)
        self.drive = AkCanDrive(self.host_bus, [cal], reply_timeout_s=device.safety.reply_timeout_s,
                                estop_can_id=ESTOP_ID, clock_ns=self.clock.now_ns,
                                limits=[host_limits] if host_limits is not None else None)
        self.emu = EmulatedAkDrive(self.limits, cal.can_id)
        self.rig = HilRig(self.rig_bus, [(self.emu, cal.direction, cal.zero_offset_rad)], SimulatedKneePlant(),
                          rate_hz=500.0, seed=3)
        n = len(device.joints)
        self.command = LatestValueBuffer(command_dtype(n))
        self.control = ControlBlock(Slot.N)
        self.records = RecordRing(torque_record_dtype(n), 4096)
        self.events = RecordRing(EVENT_DTYPE, 1024)
        self.loop = TorqueLoop(device, self.drive, self.clock, self.command, self.control, self.records, self.events)
        self.cmd = np.zeros((), dtype=command_dtype(n))
        self.fault, self.state = fault, state
        self.expected, self.detect_s, self.duration = FAULTS[fault]
        self._orig_send = self.host_bus.send
        self._inner = self.loop.step
        self.loop.step = self.step     # wrap: publish, inject, service the rig, then the real cycle

    def publish(self, torque, frozen=False):
        self.cmd["frame_index"] += 1
        if not frozen:                 # a frozen camera: the estimator publishes with the last frame's capture time
            self.cmd["capture_ns"] = self.clock.now_ns() - 3_000_000
        self.cmd["write_ns"] = self.clock.now_ns()
        self.cmd["torque_nm"] = [torque]
        self.command.write(self.cmd)

    def _enobufs(self, *a, **k):
        raise can.CanOperationError("No buffer space available", error_code=105)

    def inject(self, on: bool):
        f = self.fault
        plant = {"drive_silent": FaultInjection(silent=True), "drive_error_code": FaultInjection(error_code=2),
                 "corrupt_replies": FaultInjection(corrupt_replies=1.0), "wrong_reply_id": FaultInjection(wrong_id=True),
                 "error_frames": FaultInjection(error_frames=True), "bus_off": FaultInjection(bus_off=True),
                 "over_temperature": FaultInjection(temperature_offset_c=70.0)}.get(f)
        if plant is not None:
            self.rig.set_faults(plant if on else FaultInjection())
        elif f == "enobufs_on_send":
            self.host_bus.send = self._enobufs if on else self._orig_send
        elif f == "estop_frame" and on:
            self.rig_bus.send(can.Message(arbitration_id=ESTOP_ID, data=b"\x01", is_extended_id=False))

    def step(self, info):
        i = info.index
        ctl = self.control
        if i == 0:
            ctl[Slot.REQ_ACTIVE] = 0 if self.state in ("INACTIVE", "RAMPING") else 1
        if self.state == "RAMPING" and i == INJECT - 5:
            ctl[Slot.REQ_ACTIVE] = 1
        if self.state == "FADING" and i == INJECT - 10:
            ctl[Slot.REQ_ACTIVE] = 0
        publishing = not (self.fault == "stale_command" and i >= INJECT)
        if publishing and i % 8 == 0:
            nan = self.fault == "nan_command" and i >= INJECT
            self.publish(math.nan if nan else TORQUE_NM, frozen=self.fault == "frozen_camera" and i >= INJECT)
        if i == INJECT:
            self.inject(True)
        if self.duration is not None and i == INJECT + self.duration:
            self.inject(False)
        self.rig.service(info.start_ns)
        self.rig.step(PERIOD_NS * 1e-9)
        self.clock.advance(40_000)
        self._inner(info)

    def run(self):
        self.loop.run(max_cycles=CYCLES)
        return self.records.drain()

    def close(self):
        self.host_bus.send = self._orig_send
        self.host_bus.shutdown()
        self.rig_bus.shutdown()
        for c in (self.command, self.control, self.records, self.events):
            c.close()


@pytest.mark.parametrize("fault,state", list(itertools.product(FAULTS, STATES)))
def test_fault_matrix(fault, state, configs, request):
    device, _, calibration = configs
    case = Case(device, calibration, fault, state, channel=f"fm-{request.node.name}")
    try:
        recs = case.run()
        limit = device.joints[0].torque_limit_nm
        cmd = recs["commanded_nm"][:, 0]
        # the log is complete: one record per cycle, none lost
        assert len(recs) == CYCLES and np.array_equal(recs["cycle"], np.arange(CYCLES))
        assert np.all(np.isfinite(cmd)) and np.max(np.abs(cmd)) <= limit
        # zero within detection + fade of the injection
        t = (recs["start_ns"] - recs["start_ns"][0]) / 1e9
        t_inj = t[INJECT]
        bound = t_inj + case.detect_s + device.safety.fade_time_s + 2 * PERIOD_NS / 1e9
        states = [STATE_NAMES[int(s)] for s in recs["state"]]
        before = cmd[INJECT - 1]
        # the state at injection is the one named (so the zero checks below are not vacuous)
        assert {"INACTIVE": before == 0.0, "ACTIVE": before == TORQUE_NM,
                "RAMPING": 0.0 < before < TORQUE_NM, "FADING": 0.0 < before < TORQUE_NM}[state], (state, before)
        if state == "INACTIVE":
            assert np.all(cmd == 0.0)
        else:
            assert states[INJECT - 1] in ({"RAMPING": "ACTIVE"}.get(state, state), "FADING")
            assert np.all(cmd[t > bound] == 0.0), (fault, state, cmd[t > bound][:5])
        latched = {f.kind.value for f in case.loop.supervisor.latched}
        if state in ("ACTIVE", "RAMPING"):
            assert latched & case.expected, (fault, state, latched)
            assert states[-1] == "FAULTED"
        # the wire: what the emulated drive last received is zero torque within half a quantum
        last = case.emu.last_command
        assert last is not None and abs(last.torque_nm) <= quantum(case.limits, "torque_nm") / 2 + 1e-12
        assert last.kp == 0.0 and last.kd == 0.0
    finally:
        case.close()


@pytest.mark.parametrize("host_v_range,expect_fault", [(None, False), (22.5, True)])
def test_wrong_velocity_table_is_caught_at_start(configs, request, host_v_range, expect_fault):
    """The emulated drive speaks AK80-9 V2 ranges (V +/-25.64 rad/s); the host decodes with a table whose
    velocity range is +/-22.5 (V1.1's) but the same 8-byte reply: the start-up check (reported velocity
    against the position derivative while the knee swings) latches a CONFIG fault; the right table passes."""
    import dataclasses

    device, _, calibration = configs
    host = None
    if host_v_range is not None:
        host = dataclasses.replace(limits_for("AK80-9", "V2"), v_min=-host_v_range, v_max=host_v_range)
    case = Case(device, calibration, "drive_error_code", "ACTIVE", channel=f"vc-{request.node.name}", host_limits=host)
    case.inject = lambda on: None          # no other fault: only the table mismatch
    try:
        case.loop.run(max_cycles=int(device.safety.velocity_check_s * 500) + 50)
        latched = {(f.source, f.kind.value) for f in case.loop.supervisor.latched}
        notes = [e.detail for e in case.loop.supervisor.events if e.what == "note"]
        assert any("velocity table check" in n for n in notes), notes
        assert (("drive.velocity_table", "CONFIG") in latched) == expect_fault, (latched, notes)
        if expect_fault:
            assert any("WRONG velocity table" in n for n in notes)
    finally:
        case.close()
