"""The torque loop body on a FakeClock: interpolation, staleness fade, lifecycle, shutdown, parent loss."""
import math

import numpy as np
import pytest

from firmware_bridge.clock import FakeClock
from runtime.control.drive import Drive, DriveResult, JointStates
from runtime.control.torque_loop import TorqueLoop
from runtime.core.channels import (
    EVENT_DTYPE,
    STATE_NAMES,
    Slot,
    command_dtype,
    torque_record_dtype,
)
from runtime.core.shared_memory import ControlBlock, LatestValueBuffer, RecordRing


class RecordingDrive(Drive):
    """A drive that records every write (joint torque, N*m) and reports a fixed in-range state."""

    def __init__(self):
        self.writes, self.enabled, self.calls = [], False, []
        self.read_result = self.write_result = DriveResult.OK

    def enable(self, t_ns):
        self.calls.append(("enable", t_ns, list(self.writes[-1]) if self.writes else None))
        self.enabled = True

    def write(self, torque_nm, t_ns):
        self.writes.append(list(torque_nm))
        return self.write_result

    def read(self, out: JointStates, t_ns):
        out.position_rad[0], out.velocity_rad_s[0], out.rx_ns[0] = 1.0, 0.0, t_ns
        return self.read_result

    def disable(self, t_ns):
        self.calls.append(("disable", t_ns, list(self.writes[-1]) if self.writes else None))
        self.enabled = False


class Rig:
    def __init__(self, device):
        self.clock = FakeClock()
        n = len(device.joints)
        self.command = LatestValueBuffer(command_dtype(n))
        self.control = ControlBlock(Slot.N)
        self.records = RecordRing(torque_record_dtype(n), 20000)
        self.events = RecordRing(EVENT_DTYPE, 1000)
        self.drive = RecordingDrive()
        self.loop = TorqueLoop(device, self.drive, self.clock, self.command, self.control, self.records, self.events)
        self.cmd = np.zeros((), dtype=command_dtype(n))
        self.frame = 0

    def publish(self, torque):
        self.cmd["frame_index"] = self.frame
        self.cmd["capture_ns"] = self.clock.now_ns() - 5_000_000    # captured 5 ms before
        self.cmd["write_ns"] = self.clock.now_ns()
        self.cmd["torque_nm"] = [torque]
        self.command.write(self.cmd)
        self.frame += 1

    def close(self):
        for c in (self.command, self.control, self.records, self.events):
            c.close()


@pytest.fixture
def rig(configs):
    r = Rig(configs[0])
    yield r
    r.close()


def drive_for(rig, cycles, publish_every=None, torque=10.0, until_publish_stops=None):
    """Run `cycles` torque cycles, publishing a command every `publish_every` cycles (60 Hz ~ every 8.33)."""
    loop = rig.loop
    k0 = loop.loop.cycles

    def step(info):
        i = info.index
        if publish_every and (until_publish_stops is None or i < until_publish_stops) and int(i % publish_every) == 0:
            rig.publish(torque)
        rig.clock.advance(50_000)
        loop.step(info)

    loop.loop.run(step, cycles=k0 + cycles)


def test_zero_sent_before_enable_and_final_zero_on_exit(rig):
    rig.control[Slot.REQ_SHUTDOWN] = 1
    rig.loop.run(max_cycles=10)
    first = rig.drive.calls[0]
    assert first[0] == "enable" and first[2] == [0.0]           # zero was on the wire before enabling
    assert rig.drive.calls[-1][0] == "disable" and rig.drive.calls[-1][2] == [0.0]
    assert rig.control[Slot.ST_EXITED] == 1


def test_stale_command_fades_to_zero_within_stale_plus_fade(rig, configs):
    dev = configs[0]
    rig.control[Slot.REQ_ACTIVE] = 1
    drive_for(rig, 500, publish_every=8, torque=10.0, until_publish_stops=250)
    recs = rig.records.drain()
    cmd = recs["commanded_nm"][:, 0]
    states = [STATE_NAMES[int(s)] for s in recs["state"]]
    assert "ACTIVE" in states and states[-1] == "FAULTED"
    assert np.max(np.abs(cmd)) <= dev.joints[0].torque_limit_nm
    last_pub = 248 * 2_000_000                                    # last publish at cycle 248 (8*31)
    t = recs["start_ns"] - recs["start_ns"][0]
    limit_ns = last_pub + (dev.torque_loop.stale_after_s + dev.safety.fade_time_s) * 1e9 + 2 * 2_000_000
    assert np.all(cmd[t > limit_ns] == 0.0)
    ev = rig.events.drain()
    assert any(e["kind"] == b"STALE" and e["latched"] for e in ev)


def test_linear_interpolation_between_commands(rig):
    rig.control[Slot.REQ_ACTIVE] = 1
    drive_for(rig, 300, publish_every=8, torque=2.0)                # settle at 2 N*m
    drive_for(rig, 8, publish_every=8, torque=6.0)                 # one new command of 6 N*m
    recs = rig.records.drain()[-8:]
    req = recs["requested_nm"][:, 0]
    d = np.diff(req)
    assert np.all(d >= 0) and req[0] == 2.0 and req[-1] < 6.0       # ramps from 2 towards 6, no step
    # linear over one estimation period (1/60 s): 4 N*m * 2 ms / 16.67 ms per torque cycle
    assert np.allclose(d[d > 0], 4.0 * 0.002 * 60.0, rtol=1e-3)


def test_command_age_is_capture_to_write(rig):
    rig.control[Slot.REQ_ACTIVE] = 1
    drive_for(rig, 20, publish_every=8, torque=1.0)
    recs = rig.records.drain()
    ages = recs["command_age_ns"][recs["command_age_ns"] >= 0]
    assert ages.min() >= 5_000_000                                 # at least the 5 ms capture->publish delay
    assert ages.max() <= 5_000_000 + 8 * 2_000_000 + 1_000_000


def test_estop_latches_and_reset_reactivates_with_ramp(rig):
    rig.control[Slot.REQ_ACTIVE] = 1
    drive_for(rig, 200, publish_every=8, torque=8.0)
    rig.control[Slot.REQ_ESTOP] = 1
    drive_for(rig, 80, publish_every=8, torque=8.0)
    assert rig.loop.supervisor.state.value == "FAULTED"
    assert rig.drive.writes[-1] == [0.0]
    rig.control[Slot.REQ_ESTOP] = 0
    rig.control[Slot.REQ_RESET_SEQ] = 1
    drive_for(rig, 5, publish_every=8, torque=8.0)
    assert rig.loop.supervisor.state.value == "ACTIVE"
    assert rig.drive.writes[-5][0] > 0.0
    recs = rig.records.drain()[-6:]
    w = recs["commanded_nm"][:, 0]
    dt = np.diff(recs["start_ns"]) * 1e-9
    assert w[0] == 0.0 and np.all(np.diff(w) <= 300.0 * dt + 1e-9)    # slew limit 300 N*m/s from zero


def test_parent_loss_faults_fades_and_stops(rig, monkeypatch):
    rig.control[Slot.REQ_ACTIVE] = 1
    rig.loop.parent_pid = 4242
    monkeypatch.setattr("os.getppid", lambda: 1)
    drive_for(rig, 200, publish_every=8, torque=8.0)
    assert rig.loop.finished
    assert rig.loop.supervisor.latched[0].kind.value == "PARENT_LOST"
    assert rig.drive.writes[-1] == [0.0]


def test_nan_command_never_reaches_the_drive(rig):
    rig.control[Slot.REQ_ACTIVE] = 1
    drive_for(rig, 100, publish_every=8, torque=5.0)
    drive_for(rig, 100, publish_every=8, torque=math.nan)
    assert all(math.isfinite(w[0]) for w in rig.drive.writes)
    assert rig.drive.writes[-1] == [0.0]
    assert rig.loop.supervisor.latched[0].kind.value == "NAN"


def test_drive_asking_to_deactivate_fades_and_results_are_counted(rig):
    """A read returning DEACTIVATE (ros2_control's return_type) deactivates the supervisor: torque fades to
    zero without a latched fault; ERROR/DEACTIVATE reads and failed writes are counted in the run report."""
    rig.control[Slot.REQ_ACTIVE] = 1
    drive_for(rig, 100, publish_every=8, torque=8.0)
    assert STATE_NAMES[int(rig.control[Slot.ST_STATE])] == "ACTIVE" and rig.drive.writes[-1][0] > 0.0
    rig.drive.read_result = DriveResult.DEACTIVATE
    drive_for(rig, 1, publish_every=8, torque=8.0)
    rig.drive.read_result = DriveResult.ERROR
    rig.drive.write_result = DriveResult.ERROR
    drive_for(rig, 2, publish_every=8, torque=8.0)
    rig.drive.read_result = rig.drive.write_result = DriveResult.OK
    drive_for(rig, 400, publish_every=8, torque=8.0)
    assert rig.loop.supervisor.latched == [] and rig.drive.writes[-1] == [0.0]
    assert STATE_NAMES[int(rig.control[Slot.ST_STATE])] == "INACTIVE"
    assert rig.loop.drive_read_results == {"error": 2, "deactivate": 1} and rig.loop.drive_write_errors == 2


def test_drive_base_defaults_and_context_manager(configs):
    from runtime.control.drive import SimulatedDrive

    d = RecordingDrive()
    assert d.poll_faults() == [] and d.velocity_check() is None and not d.closed
    with d:
        d.enable(5)
    assert d.calls[-1][:2] == ("disable", d.calls[-1][1]) and d.closed and not d.enabled
    d.close()
    assert [c[0] for c in d.calls] == ["enable", "disable"]          # closing twice disables once
    with SimulatedDrive(1, 0.002, 75.0, 1.8) as sim:
        assert sim.write([1.0], 0) is DriveResult.OK
        out = JointStates.zeros(1)
        assert sim.read(out, 7) is DriveResult.OK and out.rx_ns == [7]
    assert sim.closed and not sim.enabled


def test_after_a_drive_deactivate_only_a_new_request_activates(rig):
    rig.control[Slot.REQ_ACTIVE] = 1
    drive_for(rig, 100, publish_every=8, torque=8.0)
    rig.drive.read_result = DriveResult.DEACTIVATE
    drive_for(rig, 1, publish_every=8, torque=8.0)
    rig.drive.read_result = DriveResult.OK
    drive_for(rig, 50, publish_every=8, torque=8.0)
    assert STATE_NAMES[int(rig.control[Slot.ST_STATE])] != "ACTIVE"
    rig.control[Slot.REQ_ACTIVE] = 0
    drive_for(rig, 1, publish_every=8, torque=8.0)
    rig.control[Slot.REQ_ACTIVE] = 1
    drive_for(rig, 200, publish_every=8, torque=8.0)
    assert STATE_NAMES[int(rig.control[Slot.ST_STATE])] == "ACTIVE" and rig.drive.writes[-1][0] > 0.0
