"""Tests of the AK-series CAN drive back end (:mod:`firmware_bridge.ak_can`).

Everything runs on python-can's in-process ``virtual`` bus, one unique channel per test.  The
drive side is :class:`FakeDrive`, a second bus on the same channel that answers each command
frame with ``encode_reply`` of its simulated state.  It is synchronous: the test calls
``fake.service()`` between ``drive.write`` and ``drive.read`` -- no threads, no sleeps -- and
all times are injected (``t_ns`` arguments and ``clock_ns``), so every test is deterministic.
"""
from __future__ import annotations

import dataclasses
import errno
import math
import uuid
from dataclasses import dataclass, field

import can
import pytest
from can.interfaces.virtual import VirtualBus

from firmware_bridge.ak_can import CAN_ERR_BUSOFF, FAULT_KINDS, AkCanDrive
from firmware_bridge.ak_mit import (
    ENTER_MOTOR_MODE,
    EXIT_MOTOR_MODE,
    ZERO_POSITION,
    decode_command,
    decode_reply,
    encode_reply,
    quantum,
    safe_stop_command,
)
from firmware_bridge.calibration import ActuatorCalibration
from firmware_bridge.motor_tables import MitLimits, limits_for
from runtime.control.drive import JointStates

MS = 1_000_000
T0 = 10_000 * MS  # an arbitrary monotonic start time


def cal(name: str = "m1", can_id: int = 1, *, model: str = "AK80-9", firmware: str = "V2", direction: int = 1,
        zero: float = 0.0, gear: float = 1.0, kt: float = 0.819, measured: float | None = None) -> ActuatorCalibration:
    return ActuatorCalibration(name=name, can_id=can_id, model=model, firmware=firmware, direction=direction,
                               zero_offset_rad=zero, gear_ratio=gear, torque_constant_nm_per_a=kt,
                               measured_torque_constant_nm_per_a=measured)


# ---------------------------------------------------------------------------------------
# the fake drive
# ---------------------------------------------------------------------------------------


@dataclass
class SimMotor:
    limits: MitLimits                  # table the fake drive encodes its replies with
    position_rad: float = 0.0          # MIT frame, output shaft
    velocity_rad_s: float = 0.0
    temperature_c: float = 30.0
    error_code: int = 0
    motor_mode: bool = False
    silent: bool = False
    last_torque_nm: float = 0.0        # decoded T_ff of the last command
    commands: list = field(default_factory=list)

    def reply_data(self, motor_id: int) -> bytes:
        torque = self.last_torque_nm if self.motor_mode else 0.0
        if self.limits.reply_length == 6:
            return encode_reply(self.limits, motor_id, self.position_rad, self.velocity_rad_s, torque)
        return encode_reply(self.limits, motor_id, self.position_rad, self.velocity_rad_s, torque,
                            self.temperature_c, self.error_code)


class FakeDrive:
    """AK drives on a second virtual bus; ``service()`` answers the frames received so far."""

    def __init__(self, channel: str, motors: dict[int, MitLimits], *, master_id: int = 0,
                 reply_on_motor_id: bool = False) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        self.sim = {cid: SimMotor(lim) for cid, lim in motors.items()}
        self.master_id = master_id
        self.reply_on_motor_id = reply_on_motor_id
        self.received: list[tuple[int, bytes]] = []   # every frame seen, in order
        self.sent: list[tuple[int, bytes, bool]] = []  # every frame sent: (id, data, is_error)

    def service(self) -> int:
        n = 0
        while (msg := self.bus.recv(0)) is not None:
            data = bytes(msg.data)
            self.received.append((msg.arbitration_id, data))
            sim = self.sim.get(msg.arbitration_id)
            if sim is None or len(data) != 8:
                continue
            if data == ENTER_MOTOR_MODE:
                sim.motor_mode = True
            elif data == EXIT_MOTOR_MODE:
                sim.motor_mode = False
            elif data == ZERO_POSITION:
                sim.position_rad = 0.0
                sim.silent = True  # the test ends the silence
                continue
            else:
                cmd = decode_command(sim.limits, data)
                sim.commands.append(cmd)
                sim.last_torque_nm = cmd.torque_nm
            if not sim.silent:
                self.reply(msg.arbitration_id)
                n += 1
        return n

    def reply(self, motor_id: int) -> bytes:
        data = self.sim[motor_id].reply_data(motor_id)
        self.send(motor_id if self.reply_on_motor_id else self.master_id, data)
        return data

    def send(self, arbitration_id: int, data: bytes, *, is_error_frame: bool = False) -> None:
        self.bus.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False,
                                  is_error_frame=is_error_frame))
        self.sent.append((arbitration_id, bytes(data), is_error_frame))

    def commands_to(self, motor_id: int) -> list[bytes]:
        return [d for i, d in self.received if i == motor_id]


class FakeClock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        self.t += 1000
        return self.t


@pytest.fixture
def channel(request) -> str:
    return f"akcan-{request.node.name}-{uuid.uuid4().hex}"


@pytest.fixture
def buses():
    opened: list[can.BusABC] = []
    yield opened
    for b in opened:
        b.shutdown()


@dataclass
class Rig:
    drive: AkCanDrive
    fake: FakeDrive
    bus: can.BusABC
    out: JointStates
    log: list
    clock: FakeClock
    t: int = T0

    def cycle(self, torques=None, dt_ns: int = 2 * MS, service: bool = True) -> list:
        """One torque-loop cycle: write, drive answers, read; returns the faults polled."""
        self.t += dt_ns
        self.drive.write(torques if torques is not None else [0.0] * len(self.out.rx_ns), self.t)
        if service:
            self.fake.service()
        self.drive.read(self.out, self.t)
        return self.drive.poll_faults()


@pytest.fixture
def make_rig(channel, buses):
    def make(actuators=None, *, fake_limits: dict[int, MitLimits] | None = None, bus=None,
             receive_own: bool = False, reply_on_motor_id: bool = False, **kwargs) -> Rig:
        actuators = actuators or [cal()]
        if bus is None:
            bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=receive_own)
        buses.append(bus)
        limits = fake_limits or {a.can_id: a.limits for a in actuators}
        fake = FakeDrive(channel, limits, master_id=kwargs.get("master_id", 0), reply_on_motor_id=reply_on_motor_id)
        buses.append(fake.bus)
        log: list = []
        clock = FakeClock()
        drive = AkCanDrive(bus, actuators, frame_log=lambda *a: log.append(a), clock_ns=clock, **kwargs)
        return Rig(drive, fake, bus, JointStates.zeros(len(actuators)), log, clock)
    return make


def kinds(faults) -> list[tuple[str, str]]:
    return [(f[0], f[1]) for f in faults]


# ---------------------------------------------------------------------------------------
# enable / write / read / disable
# ---------------------------------------------------------------------------------------


def test_enable_sends_safe_stop_before_enter_mode(make_rig):
    a1, a2 = cal("m1", 1), cal("m2", 2, model="AK10-9", firmware="V2")
    rig = make_rig([a1, a2])
    rig.drive.enable(rig.t)
    rig.fake.service()
    assert rig.fake.received == [
        (1, safe_stop_command(a1.limits)), (1, ENTER_MOTOR_MODE),
        (2, safe_stop_command(a2.limits)), (2, ENTER_MOTOR_MODE),
    ]
    for a in (a1, a2):
        cmd = decode_command(a.limits, rig.fake.commands_to(a.can_id)[0])
        assert cmd.kp == 0.0 and cmd.kd == 0.0
        assert abs(cmd.torque_nm) <= quantum(a.limits, "torque_nm") / 2 + 1e-12
    # the drive replayed the zero command on enable: it produces (about) no torque
    assert all(abs(s.last_torque_nm) < 0.02 and s.motor_mode for s in rig.fake.sim.values())
    assert rig.drive.enabled


def test_write_encodes_direction_gear_ratio_and_kt(make_rig):
    a1 = cal("m1", 1, direction=-1, gear=2.0, kt=0.819, measured=1.0)   # Kt override: s = 0.819
    a2 = cal("m2", 2)
    rig = make_rig([a1, a2])
    rig.drive.enable(rig.t)
    rig.fake.service()
    n0 = len(rig.fake.received)
    rig.t += 2 * MS
    rig.drive.write([3.0, 5.0], rig.t)
    rig.fake.service()
    frames = rig.fake.received[n0:]
    assert [i for i, _ in frames] == [1, 2]  # one frame per motor
    for (cid, data), a, tj in zip(frames, (a1, a2), (3.0, 5.0)):
        cmd = decode_command(a.limits, data)
        want = a.joint_to_motor_torque(tj)
        assert abs(cmd.torque_nm - want) <= quantum(a.limits, "torque_nm") / 2 + 1e-12
        assert cmd.kp == 0.0 and cmd.kd == 0.0
        assert abs(cmd.position_rad) <= quantum(a.limits, "position_rad")
        assert abs(cmd.velocity_rad_s) <= quantum(a.limits, "velocity_rad_s")
    assert a1.joint_to_motor_torque(3.0) == pytest.approx(-1 * (0.819 / 1.0) * 3.0 / 2.0)
    assert decode_command(a1.limits, frames[0][1]).torque_nm < 0  # direction -1
    # out of the table range: clamped (counted), non-finite: safe stop (counted), never raised
    rig.drive.write([1000.0, math.nan], rig.t + 2 * MS)
    rig.fake.service()
    big, nan = rig.fake.received[-2:]
    assert decode_command(a1.limits, big[1]).torque_nm == pytest.approx(a1.limits.t_min, abs=0.01)
    assert nan[1] == safe_stop_command(a2.limits)
    st = rig.drive.stats
    assert st["clamped_commands"] == 1 and st["nonfinite_commands"] == 1
    with pytest.raises(ValueError):
        rig.drive.write([1.0], rig.t)


def test_write_while_disabled_sends_safe_stop(make_rig):
    rig = make_rig()
    rig.drive.write([7.0], rig.t)  # the torque loop's "zero first" write comes before enable
    rig.fake.service()
    assert rig.fake.received == [(1, safe_stop_command(limits_for("AK80-9", "V2")))]


def test_read_fills_joint_side_state(make_rig):
    a1 = cal("m1", 1, direction=-1, gear=2.0, zero=0.5, measured=1.0)
    a2 = cal("m2", 2, model="AK10-9", firmware="V1.1")  # 6-byte replies: no temperature / error
    rig = make_rig([a1, a2])
    out = rig.out
    rig.drive.read(out, rig.t)  # nothing received yet: out untouched, rx_ns 0 = never
    assert out.position_rad == [0.0, 0.0] and out.rx_ns == [0, 0]
    rig.drive.enable(rig.t)
    s1, s2 = rig.fake.sim[1], rig.fake.sim[2]
    s1.position_rad, s1.velocity_rad_s, s1.temperature_c = 1.3, 2.0, 41.0
    s2.position_rad, s2.velocity_rad_s = -0.7, -1.5
    faults = rig.cycle([2.0, -4.0])
    assert faults == []
    t_rx = rig.t
    for i, (a, sim) in enumerate(((a1, s1), (a2, s2))):
        r = decode_reply(a.limits, sim.reply_data(a.can_id))
        assert out.position_rad[i] == pytest.approx(a.motor_to_joint_position(r.position_rad), rel=1e-12, abs=1e-12)
        assert out.velocity_rad_s[i] == pytest.approx(a.motor_to_joint_velocity(r.velocity_rad_s), rel=1e-12)
        assert out.torque_nm[i] == pytest.approx(a.motor_to_joint_torque(r.torque_nm), rel=1e-12)
        assert out.rx_ns[i] == t_rx
    # the torque read back is the torque commanded, joint side, within the quantisation
    assert out.torque_nm[0] == pytest.approx(2.0, abs=quantum(a1.limits, "torque_nm") * 2 / 0.819)
    assert out.torque_nm[1] == pytest.approx(-4.0, abs=quantum(a2.limits, "torque_nm"))
    assert out.position_rad[0] == pytest.approx(-(1.3 - 0.5) / 2.0, abs=quantum(a1.limits, "position_rad"))
    assert out.temperature_c == [41.0, None] and out.error_code == [0, None]
    # no reply this cycle: the last good values stay, rx_ns tells their age
    before = (list(out.position_rad), list(out.velocity_rad_s), list(out.rx_ns))
    rig.cycle([0.0, 0.0], service=False)
    assert (out.position_rad, out.velocity_rad_s, out.rx_ns) == before
    assert rig.drive.stats["last_reply_age_s"] == {"m1": pytest.approx(0.002), "m2": pytest.approx(0.002)}


def test_disable_sends_safe_stop_then_exit(make_rig):
    a1, a2 = cal("m1", 1), cal("m2", 2)
    rig = make_rig([a1, a2])
    rig.drive.enable(rig.t)
    rig.cycle([5.0, -5.0])
    n0 = len(rig.fake.received)
    rig.drive.disable(rig.t)
    rig.fake.service()
    assert rig.fake.received[n0:] == [
        (1, safe_stop_command(a1.limits)), (1, EXIT_MOTOR_MODE),
        (2, safe_stop_command(a2.limits)), (2, EXIT_MOTOR_MODE),
    ]
    # nothing latched: the last command each drive stored is the zero one
    assert all(abs(s.last_torque_nm) < 0.02 and not s.motor_mode for s in rig.fake.sim.values())
    assert not rig.drive.enabled


# ---------------------------------------------------------------------------------------
# timeouts and zeroing
# ---------------------------------------------------------------------------------------


def test_first_reply_gets_its_own_timeout(make_rig):
    """A drive that never answers after enable: TIMEOUT once first_reply_timeout_s has passed, not before."""
    rig = make_rig(reply_timeout_s=0.05, first_reply_timeout_s=0.5)
    d = rig.drive
    d.enable(T0)
    rig.fake.sim[1].silent = True
    rig.fake.service()
    d.read(rig.out, T0 + 200 * MS)
    assert d.poll_faults() == []                # past reply_timeout_s, within the first-reply limit
    d.read(rig.out, T0 + 501 * MS)
    f = d.poll_faults()
    assert kinds(f) == [("can.m1", "TIMEOUT")] and f[0][2] == pytest.approx(0.501)


def test_first_reply_timeout_below_reply_timeout_is_refused(make_rig):
    with pytest.raises(ValueError, match="first_reply_timeout_s"):
        make_rig(reply_timeout_s=0.05, first_reply_timeout_s=0.01)


def test_timeout_fault_after_reply_timeout(make_rig):
    rig = make_rig(reply_timeout_s=0.05, first_reply_timeout_s=0.05)
    d = rig.drive
    d.read(rig.out, T0 + 500 * MS)  # not enabled: silence is no fault
    assert d.poll_faults() == []
    d.enable(T0)
    rig.fake.sim[1].silent = True
    rig.fake.service()
    d.read(rig.out, T0 + 50 * MS)
    assert d.poll_faults() == []  # exactly the limit: not yet
    d.read(rig.out, T0 + 51 * MS)
    f = d.poll_faults()
    assert kinds(f) == [("can.m1", "TIMEOUT")] and f[0][2] == pytest.approx(0.051) and f[0][3] == T0 + 51 * MS
    d.read(rig.out, T0 + 60 * MS)
    assert d.poll_faults() == []  # same timeout: rate-limited
    d.read(rig.out, T0 + 1060 * MS)
    assert [x[2] for x in d.poll_faults()] == [pytest.approx(1.06)]
    assert d.stats["timeouts"] == 1
    # replies again, then a new silence: a new timeout, reported at once
    rig.fake.sim[1].silent = False
    rig.t = T0 + 1100 * MS
    assert rig.cycle() == []
    rig.fake.sim[1].silent = True
    t_last = rig.t
    d.read(rig.out, t_last + 40 * MS)
    assert d.poll_faults() == []
    d.read(rig.out, t_last + 55 * MS)
    assert [(x[1], round(x[2], 6)) for x in d.poll_faults()] == [("TIMEOUT", 0.055)]
    assert d.stats["timeouts"] == 2


def test_zero_position_quiet_window_suppresses_timeout_and_invalidates_state(make_rig):
    a1, a2 = cal("m1", 1), cal("m2", 2)
    rig = make_rig([a1, a2], reply_timeout_s=0.05, zero_quiet_s=1.5)
    d, out = rig.drive, rig.out
    d.enable(rig.t)
    rig.fake.sim[1].position_rad = 1.0
    for _ in range(5):
        assert rig.cycle([1.0, 1.0]) == []
    assert out.position_rad[0] == pytest.approx(1.0, abs=1e-3) and d.state_valid(0)
    t_zero = rig.t
    d.zero_position(0, t_zero)
    n0 = len(rig.fake.received)
    rig.fake.service()
    assert rig.fake.received[n0:] == [(1, ZERO_POSITION)]
    assert rig.fake.sim[1].silent  # the fake drive goes quiet, its position is now 0
    rig.fake.sim[1].position_rad = 0.25
    faults = []
    stray_sent = False
    while rig.t < t_zero + 1500 * MS - 2 * MS:
        faults += rig.cycle([1.0, 1.0])
        if not stray_sent and rig.t > t_zero + 700 * MS:
            rig.fake.reply(1)  # a reply inside the window is not used
            stray_sent = True
        assert math.isnan(out.position_rad[0]) and math.isnan(out.velocity_rad_s[0])
        assert out.rx_ns[0] == 0 and out.temperature_c[0] is None and not d.state_valid(0)
        assert out.rx_ns[1] == rig.t  # the other motor is unaffected
    assert faults == []
    assert d.stats["per_motor"]["m1"]["replies_ignored_quiet"] == 1
    # during the window motor 1 got only safe-stop frames, motor 2 its torque
    after = rig.fake.received[n0 + 1:]
    assert {data for cid, data in after if cid == 1} == {safe_stop_command(a1.limits)}
    assert safe_stop_command(a2.limits) not in {data for cid, data in after if cid == 2}
    # window over, the drive answers again: state valid, in the new zero
    rig.t = t_zero + 1500 * MS
    rig.fake.sim[1].silent = False
    assert rig.cycle([1.0, 1.0]) == []
    assert d.state_valid(0) and out.position_rad[0] == pytest.approx(0.25, abs=1e-3) and out.rx_ns[0] == rig.t
    assert d.stats["timeouts"] == 0


def test_zero_position_timeout_counts_from_end_of_quiet_window(make_rig):
    rig = make_rig(reply_timeout_s=0.05, zero_quiet_s=1.5)
    d = rig.drive
    d.enable(rig.t)
    rig.cycle()
    t_zero = rig.t
    d.zero_position(0, t_zero, zero_offset_rad=0.0)
    rig.fake.service()
    assert rig.fake.sim[1].silent
    d.read(rig.out, t_zero + 1500 * MS + 50 * MS)
    assert d.poll_faults() == []
    d.read(rig.out, t_zero + 1500 * MS + 51 * MS)
    f = d.poll_faults()
    assert kinds(f) == [("can.m1", "TIMEOUT")] and f[0][2] == pytest.approx(0.051)
    assert math.isnan(rig.out.position_rad[0])  # still no reply since the zero
    with pytest.raises(ValueError):
        d.zero_position(1, rig.t)


# ---------------------------------------------------------------------------------------
# bad frames and bus problems: values, never exceptions
# ---------------------------------------------------------------------------------------


def test_malformed_replies_counted_and_reported_not_raised(make_rig):
    rig = make_rig()  # not enabled: no TIMEOUT faults mixed in
    d, fake = rig.drive, rig.fake
    fake.sim[1].position_rad = 0.5
    rig.cycle()
    good_pos = rig.out.position_rad[0]
    lim = limits_for("AK80-9", "V2")
    good = encode_reply(lim, 1, 3.0, 0.0, 0.0, 30.0, 0)
    fake.send(0, good[:6])                               # wrong length for a V2 table
    fake.send(0, bytes([9]) + good[1:])                  # motor id 9: no motor of ours
    fake.send(0, good[:7] + bytes([9]))                  # error code 9: not in the table
    fake.send(1, bytes([1]) + good[1:7] + bytes([200]))  # on the motor's own id, not our echo, bad
    rig.t += 2 * MS
    d.read(rig.out, rig.t)                               # does not raise
    faults = d.poll_faults()
    assert sorted(kinds(faults)) == [("can.bus", "MALFORMED"), ("can.m1", "MALFORMED")]  # rate-limited
    st = d.stats
    assert st["malformed"] == 4 and st["per_motor"]["m1"]["malformed"] == 3 and st["malformed_bus"] == 1
    assert rig.out.position_rad[0] == good_pos  # nothing of them reached the state
    fake.send(0, good[:6])
    d.read(rig.out, rig.t + 500 * MS)
    assert d.poll_faults() == []  # within the second
    fake.send(0, good[:6])
    d.read(rig.out, rig.t + 1000 * MS)
    assert [(f[0], f[1], f[2]) for f in d.poll_faults()] == [("can.m1", "MALFORMED", 5.0)]


def test_own_echoed_frames_are_skipped(make_rig):
    rig = make_rig([cal("m1", 1), cal("m2", 2)], receive_own=True)  # the bus reflects our frames
    d = rig.drive
    d.enable(rig.t)
    for k in range(3):
        assert rig.cycle([1.0, -2.0 + k]) == []
    st = d.stats
    assert st["echoes"] == 4 + 3 * 2 and st["malformed"] == 0 and st["replies_ok"] == 4 + 3 * 2


def test_replies_on_motor_id_with_echoes(make_rig):
    rig = make_rig([cal("m1", 1), cal("m2", 2)], receive_own=True, reply_on_motor_id=True)
    d = rig.drive
    d.enable(rig.t)
    rig.fake.sim[2].position_rad = -0.4
    for _ in range(3):
        assert rig.cycle([0.5, 0.5]) == []
    st = d.stats
    assert st["malformed"] == 0 and st["echoes"] == 10 and st["per_motor"]["m2"]["replies_ok"] == 5
    assert rig.out.position_rad[1] == pytest.approx(-0.4, abs=1e-3)


def test_error_frames_bus_error_and_bus_off(make_rig):
    rig = make_rig()
    d = rig.drive
    rig.fake.send(0x088, b"\x00" * 8, is_error_frame=True)   # CAN_ERR_PROT | CAN_ERR_BUSERROR
    rig.fake.send(0x088, b"\x00" * 8, is_error_frame=True)
    d.read(rig.out, rig.t)
    assert [(f[0], f[1], f[2]) for f in d.poll_faults()] == [("can.bus", "BUS_ERROR", float(0x88))]
    rig.fake.send(CAN_ERR_BUSOFF | 0x04, b"\x00" * 8, is_error_frame=True)
    d.read(rig.out, rig.t + MS)
    assert [(f[0], f[1], f[2]) for f in d.poll_faults()] == [("can.bus", "BUS_OFF", float(0x44))]
    assert d.stats["error_frames"] == 3 and d.stats["malformed"] == 0
    assert [e[4] for e in rig.log] == [True, True, True]  # frame_log: is_error


class StateBus(VirtualBus):
    """A virtual bus whose ``state`` the test sets (VirtualBus itself always says ACTIVE)."""

    bus_state = can.BusState.ACTIVE
    reads = 0

    @property
    def state(self):
        StateBus.reads += 1
        if self.bus_state is None:
            raise NotImplementedError
        return self.bus_state


def test_bus_state_error_is_bus_off_checked_every_n_reads(make_rig, channel):
    bus = StateBus(channel=channel, receive_own_messages=False)
    rig = make_rig(bus=bus, state_check_every=5)
    d = rig.drive
    StateBus.reads = 0
    for _ in range(10):
        rig.cycle()
    assert StateBus.reads == 2 and d.stats["bus_state"] == "ACTIVE"
    bus.bus_state = can.BusState.ERROR
    faults = []
    for _ in range(5):
        faults += rig.cycle()
    assert kinds(faults) == [("can.bus", "BUS_OFF")] and d.stats["bus_state"] == "ERROR"
    bus.bus_state = None  # an interface without it: checked once, then left alone
    for _ in range(10):
        rig.cycle()
    assert StateBus.reads == 4 and d.stats["bus_state"] == "not_implemented"


def test_virtual_bus_state_is_always_active(channel, buses):
    bus = can.Bus(interface="virtual", channel=channel)
    buses.append(bus)
    assert bus.state is can.BusState.ACTIVE  # BusABC default: no NotImplementedError


@pytest.mark.parametrize("exc, value", [
    (can.CanOperationError("No buffer space available", error_code=105), 105.0),
    (OSError(errno.ENOBUFS, "No buffer space available"), float(errno.ENOBUFS)),
    (can.CanOperationError("Transmit buffer full"), 0.0),
])
def test_send_failure_is_bus_error_and_write_returns(make_rig, monkeypatch, exc, value):
    rig = make_rig([cal("m1", 1), cal("m2", 2)])
    d = rig.drive

    def fail(msg, timeout=None):
        raise exc

    monkeypatch.setattr(rig.bus, "send", fail)
    d.enable(rig.t)
    d.write([1.0, 1.0], rig.t)
    d.read(rig.out, rig.t)
    d.disable(rig.t)
    f = d.poll_faults()
    assert [(x[0], x[1], x[2]) for x in f] == [("can.bus", "BUS_ERROR", value)]  # rate-limited
    st = d.stats
    assert st["send_errors"] == 2 * 2 + 2 + 2 * 2 and st["frames_tx"] == 0
    assert rig.log == []  # nothing was sent, nothing logged as sent
    assert "No buffer space" in d.last_send_error or "Transmit" in d.last_send_error


def test_recv_failure_is_bus_error(make_rig, monkeypatch):
    rig = make_rig()

    def fail(timeout=None):
        raise can.CanOperationError("Failed to receive", error_code=errno.ENETDOWN)

    monkeypatch.setattr(rig.bus, "recv", fail)
    rig.drive.read(rig.out, rig.t)
    assert [(x[1], x[2]) for x in rig.drive.poll_faults()] == [("BUS_ERROR", float(errno.ENETDOWN))]


def test_drive_error_code(make_rig):
    rig = make_rig()
    d = rig.drive
    d.enable(rig.t)
    assert rig.cycle() == []
    rig.fake.sim[1].error_code = 2  # over-current
    f = rig.cycle()
    assert [(x[0], x[1], x[2]) for x in f] == [("can.m1", "DRIVE_ERROR", 2.0)]
    assert rig.out.error_code[0] == 2
    assert rig.cycle() == []  # same code: rate-limited (the supervisor has latched it)
    rig.fake.sim[1].error_code = 1
    assert [(x[1], x[2]) for x in rig.cycle()] == [("DRIVE_ERROR", 1.0)]
    assert d.stats["per_motor"]["m1"]["drive_errors"] == 3


def test_estop_frame(make_rig):
    rig = make_rig(estop_can_id=0x7E)
    rig.fake.send(0x7E, b"\x01")
    rig.drive.read(rig.out, rig.t)
    rig.fake.send(0x7E, b"")
    rig.drive.read(rig.out, rig.t + MS)
    assert kinds(rig.drive.poll_faults()) == [("can.estop", "ESTOP")] * 2  # never rate-limited
    assert rig.drive.stats["estops"] == 2


def test_rx_drain_is_bounded_per_read(make_rig):
    rig = make_rig(max_rx_per_read=4)
    for _ in range(10):
        rig.fake.send(0x123, b"\x00")
    rig.drive.read(rig.out, rig.t)
    assert rig.drive.stats["frames_rx"] == 4 and rig.drive.stats["rx_cap_hits"] == 1
    rig.drive.read(rig.out, rig.t + MS)
    rig.drive.read(rig.out, rig.t + 2 * MS)
    assert rig.drive.stats["frames_rx"] == 10


def test_limits_override_temperature_offset(make_rig):
    lim40 = dataclasses.replace(limits_for("AK80-9", "V2"), temperature_offset_c=40)
    rig = make_rig([cal()], limits=[lim40], fake_limits={1: lim40})
    rig.fake.sim[1].temperature_c = 25.0
    rig.cycle()
    assert rig.out.temperature_c[0] == 25.0  # byte 6 = 65, decoded with the override


def test_other_ids_are_ignored(make_rig):
    rig = make_rig()
    rig.fake.send(0x123, b"\x01\x02")
    rig.fake.bus.send(can.Message(arbitration_id=1, data=b"\x00" * 8, is_extended_id=True))
    rig.drive.read(rig.out, rig.t)
    assert rig.drive.poll_faults() == [] and rig.drive.stats["ignored"] == 2


# ---------------------------------------------------------------------------------------
# velocity table check
# ---------------------------------------------------------------------------------------


V11 = limits_for("AK80-9", "V1.1")                                     # V +/-22.5 rad/s, 6-byte replies
V2_AS_6 = dataclasses.replace(limits_for("AK80-9", "V2"), reply_length=6)  # V +/-25.64
V50 = dataclasses.replace(V11, v_min=-50.0, v_max=50.0)                 # the other published value


@pytest.mark.parametrize("drive_table, ratio, ok", [
    (V11, 1.0, True),
    (V2_AS_6, 25.64 / 22.5, False),
    (V50, 50.0 / 22.5, False),
])
def test_velocity_check(make_rig, drive_table, ratio, ok):
    rig = make_rig([cal("m1", 1, firmware="V1.1")], fake_limits={1: drive_table})
    d = rig.drive
    d.enable(rig.t)
    sim = rig.fake.sim[1]
    t_s = 0.0
    for _ in range(250):  # 0.5 s of a 1 Hz swing, amplitude 1 rad
        t_s += 0.002
        sim.position_rad = math.sin(2 * math.pi * t_s)
        sim.velocity_rad_s = 2 * math.pi * math.cos(2 * math.pi * t_s)
        assert rig.cycle() == []
    got_ok, text = d.velocity_check()
    assert got_ok is ok, text
    r = float(text.split("= ")[1].split()[0])
    assert r == pytest.approx(ratio, rel=0.01), text
    if not ok:
        assert "WRONG velocity table" in text and f"{drive_table.v_max:.4g}"[:3] in text


def test_velocity_check_inconclusive_without_motion(make_rig):
    rig = make_rig()
    rig.drive.enable(rig.t)
    for _ in range(100):
        rig.cycle()
    ok, text = rig.drive.velocity_check()
    assert not ok and "inconclusive" in text


# ---------------------------------------------------------------------------------------
# frame log, API shape
# ---------------------------------------------------------------------------------------


def test_frame_log_sees_every_tx_and_rx_frame(make_rig):
    rig = make_rig([cal("m1", 1), cal("m2", 2)], estop_can_id=0x7E)
    d = rig.drive
    d.enable(rig.t)
    rig.cycle([1.0, 2.0])
    rig.fake.send(0x088, b"\x00" * 8, is_error_frame=True)
    rig.fake.send(0x7E, b"\x01")
    rig.cycle([0.0, 0.0])
    d.zero_position(1, rig.t)
    d.disable(rig.t)
    rig.fake.service()
    d.read(rig.out, rig.t + MS)
    tx = [(i, bytes(data)) for _, i, data, is_rx, _ in rig.log if not is_rx]
    rx = [(i, bytes(data), err) for _, i, data, is_rx, err in rig.log if is_rx]
    assert tx == rig.fake.received  # every frame sent, in order
    assert rx == rig.fake.sent      # every frame received, in order, error frames flagged
    st = d.stats
    assert st["frames_tx"] == len(tx) and st["frames_rx"] == len(rx)
    times = [e[0] for e in rig.log]
    assert times == sorted(times) and times[0] > T0  # timestamps from clock_ns
    assert all(isinstance(e[2], bytes) for e in rig.log)


def test_fault_kinds_are_supervisor_fault_kinds():
    from controllers.safety import FaultKind

    assert set(FAULT_KINDS) <= {k.value for k in FaultKind}


def test_has_the_drive_protocol_methods():
    for name in ("enable", "write", "read", "disable", "zero_position", "poll_faults", "velocity_check", "close"):
        assert callable(getattr(AkCanDrive, name))


def test_constructor_validation(channel, buses):
    bus = can.Bus(interface="virtual", channel=channel)
    buses.append(bus)
    with pytest.raises(ValueError, match="unique"):
        AkCanDrive(bus, [cal("a", 1), cal("b", 1)])
    with pytest.raises(ValueError, match="master_id"):
        AkCanDrive(bus, [cal("a", 1)], master_id=1)
    with pytest.raises(ValueError, match="estop_can_id"):
        AkCanDrive(bus, [cal("a", 1)], estop_can_id=0)
    with pytest.raises(ValueError, match="reply_timeout_s"):
        AkCanDrive(bus, [cal("a", 1)], reply_timeout_s=0)
    with pytest.raises(ValueError, match="at least one"):
        AkCanDrive(bus, [])


# ---------------------------------------------------------------------------------------
# own frames in the frame log, results, context manager, open_bus
# ---------------------------------------------------------------------------------------


def test_echoed_commands_are_logged_once_as_sent_not_received(make_rig):
    """The bus hands every command back to its sender (receive_own_messages): N cycles on 2 motors must
    log 2*(N+2) frames sent and exactly the replies as received -- not the echoes on top."""
    from runtime.report.summary import _can_summary

    rig = make_rig([cal("m1", 1), cal("m2", 2)], receive_own=True)
    d = rig.drive
    n = 25
    d.enable(rig.t)
    for k in range(n):
        assert rig.cycle([0.5, -0.5 + 0.01 * k]) == []
    sent = 2 * (2 + n)                           # safe-stop + ENTER per motor, then one command per cycle
    tx = [(i, bytes(data)) for _, i, data, is_rx, _ in rig.log if not is_rx]
    rx = [(i, bytes(data)) for _, i, data, is_rx, _ in rig.log if is_rx]
    assert tx == rig.fake.received and len(tx) == sent
    assert rx == [(i, data) for i, data, _ in rig.fake.sent] and len(rx) == sent  # the fake answers every frame
    st = d.stats
    assert st["frames_tx"] == sent and st["echoes"] == sent and st["frames_rx"] == len(rx)
    cs = _can_summary({"t_ns": [e[0] for e in rig.log], "id": [e[1] for e in rig.log],
                       "rx": [e[3] for e in rig.log], "err": [e[4] for e in rig.log],
                       "data": [bytes(e[2]) for e in rig.log]})
    assert (cs["frames_tx"], cs["frames_rx"]) == (sent, len(rx))
    assert cs["command_to_reply_s"]["count"] == 2 * n                    # one pair per command and motor


def test_read_and_write_results(make_rig):
    from firmware_bridge.drive_interface import DriveResult

    rig = make_rig(estop_can_id=0x7E)
    d = rig.drive
    d.enable(rig.t)
    rig.fake.service()
    assert d.read(rig.out, rig.t) is DriveResult.OK
    rig.t += 2 * MS
    assert d.write([1.0], rig.t) is DriveResult.OK
    rig.fake.service()
    assert d.read(rig.out, rig.t) is DriveResult.OK and d.poll_faults() == []
    assert d.write([math.nan], rig.t) is DriveResult.ERROR            # refused: safe-stop sent instead
    rig.fake.send(0x7E, b"\x01")
    rig.fake.service()
    assert d.read(rig.out, rig.t) is DriveResult.DEACTIVATE
    assert kinds(d.poll_faults()) == [("can.estop", "ESTOP")]
    rig.fake.sim[1].silent = True
    rig.t += 60 * MS                                                  # past reply_timeout_s: TIMEOUT fault
    assert d.read(rig.out, rig.t) is DriveResult.ERROR and kinds(d.poll_faults()) == [("can.m1", "TIMEOUT")]
    rig.t += 2 * MS                                                   # still timed out (fault rate-limited)
    assert d.read(rig.out, rig.t) is DriveResult.ERROR and d.poll_faults() == []


def test_context_manager_disables_and_closes_once(channel, buses):
    from firmware_bridge.drive_interface import DriveBase

    bus = can.Bus(interface="virtual", channel=channel)
    fake = FakeDrive(channel, {1: cal().limits})
    buses.append(fake.bus)
    with AkCanDrive(bus, [cal()]) as d:
        assert isinstance(d, DriveBase) and not d.enabled
        assert fake.service() == 0 and fake.received == []           # entering sends nothing (no enable)
        d.enable(T0)
    fake.service()
    assert fake.received[-2:] == [(1, safe_stop_command(cal().limits)), (1, EXIT_MOTOR_MODE)]
    assert not d.enabled and d.closed and bus._is_shutdown
    n = len(fake.received)
    d.close()                                                         # idempotent: nothing more on the bus
    d.__exit__(None, None, None)
    fake.service()
    assert len(fake.received) == n


def test_open_bus_refuses_udp_multicast_outside_a_private_netns(monkeypatch):
    from firmware_bridge import bus as bus_mod
    from firmware_bridge import netns

    def no_bus(*a, **k):
        raise AssertionError("can.Bus must not be opened")

    monkeypatch.setattr(netns, "interfaces", lambda: ["eth0", "lo"])
    monkeypatch.setattr(can, "Bus", no_bus)
    with pytest.raises(netns.PrivateNetnsRequired, match=r"refusing to open udp_multicast.*\['eth0', 'lo'\].*unshare -n"):
        bus_mod.open_bus("udp_multicast", "239.0.0.1")
    with pytest.raises(ValueError, match="interface='pcan'"):
        bus_mod.open_bus("pcan", "PCAN_USBBUS1")


def test_open_bus_virtual_receive_own_messages(channel):
    from firmware_bridge.bus import open_bus

    for own in (False, True):
        b = open_bus("virtual", f"{channel}-{own}", receive_own_messages=own, port=1234, bitrate=500_000)
        try:
            b.send(can.Message(arbitration_id=5, data=b"\x01", is_extended_id=False))
            got = b.recv(0)
            assert (got is not None) == own and (got is None or got.is_rx is False)
        finally:
            b.shutdown()
