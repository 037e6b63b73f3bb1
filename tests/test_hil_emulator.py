"""Emulated AK drives (hil.ak_emulator) and the plant process (hil.plant_process).

In-process tests use python-can's ``virtual`` bus only: a host bus and the rig's bus on one
channel, the rig driven synchronously with ``service()``/``step()``.  The one test that uses
``udp_multicast`` runs everything inside a private network namespace (``unshare -n``).
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import can
import pytest

from firmware_bridge import netns
from firmware_bridge.ak_mit import (
    ENTER_MOTOR_MODE,
    EXIT_MOTOR_MODE,
    ZERO_POSITION,
    MalformedReply,
    decode_command,
    decode_reply,
    encode_command,
    quantum,
    safe_stop_command,
)
from firmware_bridge.motor_tables import limits_for
from hil import plant_process
from hil.ak_emulator import (
    CAN_ERR_BUSOFF,
    OVER_TEMPERATURE,
    EmulatedAkDrive,
    FaultInjection,
    HilRig,
    ThermalParams,
)
from hil.knee_plant import SimulatedKneePlant

REPO = Path(__file__).resolve().parents[1]
LIM = limits_for("AK80-9", "V2")
QT = quantum(LIM, "torque_nm")
MS = 1_000_000  # ns


class Env:
    """Host bus + rig on a fresh virtual channel; one AK80-9 V2 drive, id 1."""

    def __init__(self, direction: int = 1, offset: float = 0.0, thermal: ThermalParams = ThermalParams(),
                 limits=LIM, seed: int = 0) -> None:
        ch = f"hil-{uuid.uuid4().hex}"
        self.host = can.Bus(interface="virtual", channel=ch, receive_own_messages=False)
        self.rig_bus = can.Bus(interface="virtual", channel=ch, receive_own_messages=False)
        self.plant = SimulatedKneePlant()
        self.limits = limits
        self.drive = EmulatedAkDrive(limits, 1, thermal=thermal)
        self.rig = HilRig(self.rig_bus, [(self.drive, direction, offset)], self.plant, seed=seed)
        self.t_ns = 1_000 * MS

    def close(self) -> None:
        self.host.shutdown()
        self.rig_bus.shutdown()

    def send(self, data: bytes, arbitration_id: int = 1) -> None:
        self.host.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False))

    def frames(self) -> list[can.Message]:
        out = []
        while (m := self.host.recv(0.0)) is not None:
            out.append(m)
        return out

    def replies(self) -> list[can.Message]:
        return [m for m in self.frames() if not m.is_error_frame and m.arbitration_id == 0]

    def exchange(self, data: bytes, dt_ms: float = 1.0, *, all_frames: bool = False) -> list[can.Message]:
        """Send, let the rig service at the current time, advance time; the host's replies
        (every frame the host received with ``all_frames``)."""
        self.send(data)
        self.rig.service(self.t_ns)
        self.t_ns += int(dt_ms * MS)
        return self.frames() if all_frames else self.replies()

    def one(self, data: bytes):
        r = self.exchange(data)
        assert len(r) == 1, r
        return decode_reply(self.limits, r[0].data, 1, arbitration_id=r[0].arbitration_id)


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def cmd(p=0.0, v=0.0, kp=0.0, kd=0.0, t=0.0, limits=LIM) -> bytes:
    return encode_command(limits, p, v, kp, kd, t).data


# ---------------------------------------------------------------------------------------
# protocol
# ---------------------------------------------------------------------------------------


def test_motor_mode_lifecycle(env):
    drive = env.drive
    assert not drive.motor_mode
    r = env.one(cmd(t=5.0))  # stored but not applied: not in motor mode
    assert abs(r.torque_nm) <= QT and drive.torque_nm == 0.0
    assert r.temperature_c == 25.0 and r.error_code == 0
    assert abs(r.position_rad - env.plant.flexion_rad) <= quantum(LIM, "position_rad")
    r = env.one(safe_stop_command(LIM))
    r = env.one(ENTER_MOTOR_MODE)
    assert drive.motor_mode and abs(r.torque_nm) <= QT
    r = env.one(cmd(t=5.0))
    assert abs(r.torque_nm - 5.0) <= QT and abs(drive.torque_nm - 5.0) <= QT
    r = env.one(EXIT_MOTOR_MODE)
    assert not drive.motor_mode and drive.torque_nm == 0.0 and abs(r.torque_nm) <= QT
    # not for us / not a command: ignored, no reply
    env.send(cmd(t=5.0), arbitration_id=2)
    env.send(bytes(range(8)), arbitration_id=0)  # looks like our own reply
    env.send(bytes(7))  # wrong length on our id
    env.rig.service(env.t_ns)
    assert env.replies() == []
    st = env.rig.stats
    assert st.frames_ignored == 2 and st.malformed == 1
    assert st.commands_received == 3 and st.specials_received == 2 and st.replies_sent == 5
    assert (drive.enters, drive.exits) == (1, 1)


def test_six_byte_firmware_replies():
    e = Env(limits=limits_for("AK80-9", "V1.1"))
    try:
        r = e.exchange(ENTER_MOTOR_MODE)
        assert len(r) == 1 and len(r[0].data) == 6
        assert decode_reply(e.limits, r[0].data, 1).temperature_c is None
    finally:
        e.close()


@pytest.mark.parametrize("direction,offset", [(1, 0.0), (-1, 0.3)])
def test_impedance_law_and_clamp(direction, offset):
    e = Env(direction=direction, offset=offset)
    try:
        e.exchange(safe_stop_command(LIM))
        e.exchange(ENTER_MOTOR_MODE)
        for _ in range(30):  # let the knee move so p and v are not trivial
            e.rig.step()
        q, qd = e.plant.flexion_rad, e.plant.flexion_velocity_rad_s
        p, v = direction * q + offset, direction * qd
        assert abs(qd) > 1e-3
        data = cmd(p=p + 0.1, v=0.5, kp=30.0, kd=2.0, t=1.0)
        c = decode_command(LIM, data)
        expected = c.kp * (c.position_rad - p) + c.kd * (c.velocity_rad_s - v) + c.torque_nm
        r = e.one(data)
        assert e.drive.torque_nm == pytest.approx(expected, abs=1e-9)
        assert abs(r.torque_nm - expected) <= QT / 2 + 1e-9
        assert abs(r.position_rad - p) <= quantum(LIM, "position_rad")
        assert abs(r.velocity_rad_s - v) <= quantum(LIM, "velocity_rad_s")
        tau_joint = e.rig.step()
        assert tau_joint == pytest.approx(direction * expected)
        assert e.rig.trace()["joint_torque_nm"][-1] == pytest.approx(direction * expected)
        # far from the set point with a stiff gain: clamped to the table's torque range
        r = e.one(cmd(p=p + 5.0, kp=400.0))
        assert e.drive.requested_torque_nm > LIM.t_max
        assert e.drive.torque_nm == LIM.t_max and r.torque_nm == pytest.approx(LIM.t_max)
        r = e.one(cmd(p=p - 5.0, kp=400.0))
        assert e.drive.torque_nm == LIM.t_min
        tr = e.rig.trace()
        assert set(tr) >= {"t_s", "flexion_rad", "joint_torque_nm", "torque_nm_1", "requested_torque_nm_1"}
    finally:
        e.close()


def test_replay_on_enable_kicks(env):
    env.one(cmd(t=6.0))  # nonzero command sent while disabled
    r = env.one(ENTER_MOTOR_MODE)  # the drive replays it
    assert abs(r.torque_nm - 6.0) <= QT
    assert env.rig.step() == pytest.approx(decode_command(LIM, cmd(t=6.0)).torque_nm)


def test_no_kick_when_zero_sent_before_enable(env):
    env.one(cmd(t=6.0))
    env.one(safe_stop_command(LIM))  # host's duty: zero before ENTER
    r = env.one(ENTER_MOTOR_MODE)
    assert abs(r.torque_nm) <= QT and abs(env.drive.torque_nm) <= QT / 2 + 1e-12
    assert abs(env.rig.step()) <= QT


def test_zero_position_and_silence_window(env):
    assert env.drive.zero_silence_s == 1.2
    p_before = env.one(cmd()).position_rad
    assert p_before > 0.5
    t0 = env.t_ns
    assert env.exchange(ZERO_POSITION) == []
    env.t_ns = t0 + 1_000 * MS
    assert env.exchange(cmd()) == []  # still silent 1.0 s later
    env.t_ns = t0 + 1_201 * MS
    r = env.one(cmd())
    assert abs(r.position_rad) <= quantum(LIM, "position_rad")  # re-zeroed
    assert env.rig.stats.replies_silenced == 2 and env.drive.zeros == 1


# ---------------------------------------------------------------------------------------
# fault injection, seen from the host
# ---------------------------------------------------------------------------------------


def test_drop_replies_counted():
    e = Env(seed=7)
    try:
        e.drive.faults = FaultInjection(drop_replies=1.0)
        assert all(e.exchange(cmd()) == [] for _ in range(10))
        e.drive.faults = FaultInjection(drop_replies=0.5)
        got = sum(len(e.exchange(cmd())) for _ in range(200))
        st = e.rig.stats
        assert 60 < got < 140 and st.replies_sent == got
        assert st.replies_dropped == 210 - got and st.replies_due == 210
    finally:
        e.close()


def test_corrupt_replies_fail_decode(env):
    env.drive.faults = FaultInjection(corrupt_replies=1.0)
    lengths = set()
    for _ in range(60):
        (m,) = env.exchange(cmd())
        lengths.add(len(m.data))
        with pytest.raises(MalformedReply):
            decode_reply(LIM, m.data, 1, arbitration_id=m.arbitration_id)
    assert lengths == {7, 8}  # both wrong length and flipped bits occurred
    assert env.rig.stats.replies_corrupted == 60


def test_silent_no_replies_but_commands_applied(env):
    env.one(safe_stop_command(LIM))
    env.one(ENTER_MOTOR_MODE)
    env.drive.faults = FaultInjection(silent=True)
    assert env.exchange(cmd(t=4.0)) == []
    assert abs(env.drive.torque_nm - 4.0) <= QT
    env.drive.faults = FaultInjection()
    assert len(env.exchange(cmd(t=4.0))) == 1


def test_error_code_wrong_id_extra_torque(env):
    env.drive.faults = FaultInjection(error_code=3)
    r = env.one(cmd())
    assert r.error_code == 3 and r.error_name == "over_voltage" and r.fault
    env.drive.faults = FaultInjection(wrong_id=True)
    (m,) = env.exchange(cmd())
    assert m.data[0] == 2
    with pytest.raises(MalformedReply):
        decode_reply(LIM, m.data, 1)
    env.drive.faults = FaultInjection(extra_torque_nm=2.5)
    r = env.one(cmd())  # not in motor mode: the disturbance alone
    assert abs(r.torque_nm - 2.5) <= QT and env.rig.step() == pytest.approx(2.5)


def test_delayed_replies(env):
    env.drive.faults = FaultInjection(delay_replies_s=0.005)
    t0 = env.t_ns
    assert env.exchange(cmd()) == []
    assert env.rig.next_due_ns() == t0 + 5 * MS
    env.rig.service(t0 + 4 * MS)
    assert env.replies() == []
    env.rig.service(t0 + 5 * MS)
    assert len(env.replies()) == 1 and env.rig.stats.replies_delayed == 1


def test_over_temperature_via_offset_latches_and_stops_torque(env):
    env.one(safe_stop_command(LIM))
    env.one(ENTER_MOTOR_MODE)
    assert abs(env.one(cmd(t=5.0)).torque_nm - 5.0) <= QT
    env.drive.faults = FaultInjection(temperature_offset_c=80.0)
    r = env.one(cmd(t=5.0))
    assert r.temperature_c == 105.0 and r.error_code == OVER_TEMPERATURE
    assert r.error_name == "over_temperature"
    assert abs(r.torque_nm) <= QT and env.drive.torque_nm == 0.0 and abs(env.rig.step()) == 0.0
    env.drive.faults = FaultInjection()  # "cooled", but latched until ENTER
    r = env.one(cmd(t=5.0))
    assert r.error_code == OVER_TEMPERATURE and env.drive.torque_nm == 0.0
    env.one(EXIT_MOTOR_MODE)
    env.one(safe_stop_command(LIM))
    r = env.one(ENTER_MOTOR_MODE)
    assert r.error_code == 0
    assert abs(env.one(cmd(t=5.0)).torque_nm - 5.0) <= QT


def test_error_frames_and_bus_off(env):
    env.drive.faults = FaultInjection(error_frames=True)
    frames = env.exchange(cmd(), all_frames=True)
    errs = [m for m in frames if m.is_error_frame]
    assert len(errs) == 1 and len(frames) == 2  # the reply still comes
    env.one(safe_stop_command(LIM))
    env.one(ENTER_MOTOR_MODE)
    env.one(cmd(t=3.0))
    env.drive.faults = FaultInjection(bus_off=True)
    frames = env.exchange(cmd(t=-7.0), all_frames=True)
    assert [m.is_error_frame for m in frames] == [True]
    assert frames[0].arbitration_id & CAN_ERR_BUSOFF
    assert abs(env.drive.torque_nm - 3.0) <= QT  # holds the last command, new one not received
    assert env.rig.stats.frames_discarded_bus_off == 1
    env.drive.faults = FaultInjection()
    r = env.one(cmd(t=-7.0))
    assert abs(r.torque_nm + 7.0) <= QT


def test_fault_injection_validates():
    with pytest.raises(ValueError, match="drop_replies"):
        FaultInjection(drop_replies=1.5)
    with pytest.raises(ValueError, match="error_code"):
        FaultInjection(error_code=9)
    with pytest.raises(ValueError, match="unknown"):
        FaultInjection.from_mapping({"silnt": True})


# ---------------------------------------------------------------------------------------
# thermal model
# ---------------------------------------------------------------------------------------


def test_thermal_heats_trips_and_cools():
    th = ThermalParams()
    drive = EmulatedAkDrive(LIM, 1, thermal=th)
    drive.handle_frame(safe_stop_command(LIM), 0)
    drive.handle_frame(ENTER_MOTOR_MODE, 0)
    drive.handle_frame(cmd(t=18.0), 0)
    t_ss = th.steady_state_c(drive.output_torque())
    trip_expected = -th.time_constant_s * math.log((th.t_error_c - t_ss) / (th.ambient_c - t_ss))
    temps, t = [], 0.0
    while not drive.overtemp_latched and t < 300:
        drive.output_torque()
        drive.update_thermal(0.1)
        t += 0.1
        temps.append(drive.temperature_c)
    assert all(b > a for a, b in zip(temps, temps[1:]))  # heats monotonically
    assert t == pytest.approx(trip_expected, abs=0.15) and 45 < t < 70  # peak torque: ~1 min
    assert drive.output_torque() == 0.0 and drive.error_code == OVER_TEMPERATURE
    hot = drive.temperature_c
    for _ in range(100):  # zero torque: cools toward ambient
        drive.output_torque()
        drive.update_thermal(1.0)
    assert th.ambient_c < drive.temperature_c < hot - 20
    assert drive.temperature_c == pytest.approx(
        th.ambient_c + (hot - th.ambient_c) * math.exp(-100 / th.time_constant_s))
    # rated torque is continuous: settles below the trip. By hand from the documented parameters: 9 N*m / 0.819
    # N*m/A = 10.99 A; I^2 R = 120.8 A^2 * 0.17 ohm = 20.5 W; * 2.7 K/W = 55.4 K over 25 C ambient = 80.4 C
    assert (th.kt_nm_per_a, th.resistance_ohm, th.thermal_resistance_k_per_w, th.ambient_c) == (0.819, 0.17, 2.7, 25.0)
    assert th.steady_state_c(9.0) == pytest.approx(25.0 + (9.0 / 0.819) ** 2 * 0.17 * 2.7, rel=1e-12)
    assert th.steady_state_c(9.0) < th.t_error_c


def test_thermal_through_the_rig():
    e = Env(thermal=ThermalParams(heat_capacity_j_per_k=1.0))  # fast, for the test
    try:
        e.exchange(safe_stop_command(LIM))
        e.exchange(ENTER_MOTOR_MODE)
        e.exchange(cmd(t=15.0))
        for _ in range(500):
            e.rig.step()
        hot = e.drive.temperature_c
        assert hot > 40.0
        r = e.one(cmd(t=0.0))
        assert r.temperature_c == float(math.floor(hot + 0.5))
        for _ in range(500):
            e.rig.step()
        assert e.drive.temperature_c < hot
    finally:
        e.close()


# ---------------------------------------------------------------------------------------
# plant process
# ---------------------------------------------------------------------------------------


def test_netns_guard_refuses_before_opening_the_bus(monkeypatch):
    plant_process.require_private_netns(["lo"])
    with pytest.raises(plant_process.PrivateNetnsRequired, match="unshare -n"):
        plant_process.require_private_netns(["eth0", "lo"])

    def no_bus(*a, **k):
        raise AssertionError("can.Bus must not be opened")

    monkeypatch.setattr(netns, "interfaces", lambda: ["eth0", "lo"])
    monkeypatch.setattr(can, "Bus", no_bus)
    with pytest.raises(plant_process.PrivateNetnsRequired):
        plant_process.run_plant("udp_multicast", "239.0.0.1", motors=[
            {"model": "AK80-9", "firmware": "V2", "motor_id": 1, "direction": 1, "offset": 0.0}],
            duration_s=1.0)
    assert plant_process.parse_motor("AK80-9:V2:1:+1:0.25") == {
        "model": "AK80-9", "firmware": "V2", "motor_id": 1, "direction": 1, "offset": 0.25}


def test_run_plant_on_virtual_bus(tmp_path):
    ch = f"hil-{uuid.uuid4().hex}"
    status = tmp_path / "status.json"
    result: dict = {}
    th = threading.Thread(target=lambda: result.update(plant_process.run_plant(
        "virtual", ch, motors=[{"model": "AK80-9", "firmware": "V2", "motor_id": 1,
                                "direction": 1, "offset": 0.0}],
        duration_s=3.0, faults=[{"at_s": 0.0, "error_code": 4}], status_path=status)))
    host = can.Bus(interface="virtual", channel=ch, receive_own_messages=False)
    try:
        th.start()
        deadline = time.monotonic() + 30.0                   # generous: start-up on a busy machine
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        replies = []
        for data in (safe_stop_command(LIM), ENTER_MOTOR_MODE, cmd(t=2.0)):
            host.send(can.Message(arbitration_id=1, data=data, is_extended_id=False))
            m = host.recv(0.8)                                    # 3 x 0.8 s fit in the 3 s run
            assert m is not None and m.arbitration_id == 0
            replies.append(decode_reply(LIM, m.data, 1))
        th.join(10)
    finally:
        host.shutdown()
    assert not th.is_alive()
    assert [r.error_code for r in replies] == [4, 4, 4] and abs(replies[2].torque_nm - 2.0) <= QT
    st = json.loads(status.read_text())
    assert st["state"] == "done" and st["stop_reason"] == "duration" and st["reply_mode"] == "tick"
    assert st["replies"] == 3 and st["frames"] == 3
    # the plant keeps up with the clock: every 1 ms period of the 3 s is stepped (run or counted as missed)
    assert st["ticks"] + st["missed_ticks"] >= 3000 and st["ticks"] >= 1
    assert st["plant"]["samples"] == st["ticks"] + st["missed_ticks"]
    assert result["final_temperature_c"]["1"] > 25.0


HOST_SCRIPT = r'''
import json, signal, subprocess, sys, time
import can
from firmware_bridge.ak_mit import (ENTER_MOTOR_MODE, EXIT_MOTOR_MODE, MalformedReply,
                                    decode_reply, encode_command, safe_stop_command)
from firmware_bridge.motor_tables import limits_for

status = sys.argv[1]
out = {}
# the guard, against a real second interface (a veth pair in a nested private namespace)
r = subprocess.run(["unshare", "-n", "sh", "-c",
                    'ip link add v0 type veth peer name v1 || exit 77; exec "$0" -m hil.plant_process '
                    '--interface udp_multicast --channel 239.0.0.1 --motor AK80-9:V2:1:+1:0.0 --duration 1',
                    sys.executable], capture_output=True, text=True, timeout=30)
out["refusal"] = {"rc": r.returncode, "stderr": r.stderr[-1500:]}

child = subprocess.Popen(
    [sys.executable, "-m", "hil.plant_process", "--interface", "udp_multicast",
     "--channel", "239.0.0.1", "--motor", "AK80-9:V2:1:+1:0.0", "--duration", "20",
     "--fault", json.dumps({"at_s": 3.0, "until_s": 3.5, "silent": True}), "--status", status],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
ready = child.stdout.readline()
t_ready = time.monotonic()
out["ready"] = ready.strip()
lim = limits_for("AK80-9", "V2")
bus = can.Bus(interface="udp_multicast", channel="239.0.0.1", receive_own_messages=False, fd=False)

def send(data):
    bus.send(can.Message(arbitration_id=1, data=data, is_extended_id=False))

def wait_reply(timeout):
    end = time.monotonic() + timeout
    while (rem := end - time.monotonic()) > 0:
        m = bus.recv(rem)
        if m is None:
            return None
        if m.arbitration_id == 0 and not m.is_error_frame:  # our own commands come back too
            return m
    return None

def ping(data, timeout=0.05):
    t0 = time.perf_counter_ns()
    send(data)
    m = wait_reply(timeout)
    return m, time.perf_counter_ns() - t0

# No time windows: every ping waits up to REPLY_S (generous), so an unanswered ping means the plant's silent
# fault (plant t = 3.0..3.5 s), not a busy machine. Phase A pings until the first unanswered one; the silent phase
# is that ping (and any further unanswered ones); the after phase pings 20 more once replies are back.
REPLY_S = 2.0
rtt, bad, sent = [], 0, 0
answered_before = 0
for data in (safe_stop_command(lim), ENTER_MOTOR_MODE):
    m, _ = ping(data, REPLY_S)
    sent += 1
    answered_before += m is not None
silenced = 0
while answered_before < 100_000:
    m, dt = ping(encode_command(lim, 1.0, 0.0, 20.0, 1.0, 0.0).data, REPLY_S)
    sent += 1
    if m is None:
        silenced += 1
        break
    answered_before += 1
    rtt.append(dt)
    try:
        decode_reply(lim, m.data, 1, arbitration_id=m.arbitration_id)
    except MalformedReply:
        bad += 1
    time.sleep(0.002)
out["phase_a"] = {"sent": sent - silenced, "replies": answered_before, "malformed": bad}
while True:  # still silent? (the window is 0.5 s, a ping waits 2 s: normally answered at once)
    m, _ = ping(encode_command(lim, 1.0, 0.0, 20.0, 1.0, 0.0).data, REPLY_S)
    sent += 1
    if m is not None:
        break
    silenced += 1
out["silent_phase"] = {"replies": 0, "unanswered": silenced}
got = 1
for i in range(19):
    m, _ = ping(encode_command(lim, 1.0, 0.0, 20.0, 1.0, 0.0).data, REPLY_S)
    sent += 1
    got += m is not None
m, _ = ping(EXIT_MOTOR_MODE, REPLY_S)
sent += 1
out["after_phase"] = {"sent": 20, "replies": got, "exit_reply": m is not None}
out["sent_total"] = sent
child.send_signal(signal.SIGTERM)
try:
    stdout, stderr = child.communicate(timeout=10)
except subprocess.TimeoutExpired:
    child.kill()
    stdout, stderr = child.communicate()
out["child_rc"] = child.returncode
out["child_stderr"] = stderr[-500:]
bus.shutdown()
rtt.sort()
if rtt:
    out["rtt_us"] = {"n": len(rtt), "p50": rtt[len(rtt) // 2] / 1e3,
                     "p99": rtt[min(len(rtt) - 1, int(len(rtt) * 0.99))] / 1e3, "max": rtt[-1] / 1e3}
print("RESULT " + json.dumps(out), flush=True)
'''


def _netns_unavailable() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip (iproute2) not installed"
    try:
        r = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare -n failed: {e}"
    if r.returncode != 0:
        return f"unshare -n not permitted here (needs root/CAP_SYS_ADMIN): {r.stderr.strip()[:200]}"
    return None


def test_plant_process_over_udp_multicast_in_private_netns(tmp_path):
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    status = tmp_path / "status.json"
    # Everything that opens udp_multicast runs inside this private namespace (lo only).
    argv = ["unshare", "-n", "sh", "-c",
            'ip link set lo up && ip route add 239.0.0.0/8 dev lo && exec "$@"', "sh",
            sys.executable, "-c", HOST_SCRIPT, str(status)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    out = json.loads(lines[-1][len("RESULT "):])
    print(json.dumps(out.get("rtt_us")))
    ref = out["refusal"]
    if ref["rc"] != 77:  # 77: veth unavailable in this kernel, guard covered in-process only
        assert ref["rc"] == 2 and "refusing to open udp_multicast" in ref["stderr"], ref
    assert out["ready"] and json.loads(out["ready"])["event"] == "ready", out
    # before the silent window every command was answered (and decodes); inside it none; after it all again
    assert out["phase_a"]["replies"] == out["phase_a"]["sent"] >= 3 and out["phase_a"]["malformed"] == 0, out
    assert out["silent_phase"]["unanswered"] >= 1, out
    assert out["after_phase"]["replies"] == 20 and out["after_phase"]["exit_reply"], out
    assert out["child_rc"] == 0, out["child_stderr"]
    assert out["rtt_us"]["n"] == out["phase_a"]["replies"] - 2, out["rtt_us"]   # round trips: benchmark suite
    st = json.loads(status.read_text())
    assert st["state"] == "done" and st["stop_reason"] == "signal:SIGTERM"
    assert st["reply_mode"] == "immediate" and st["sleep"] == "clock_nanosleep(ctypes)"
    # the plant's own accounting equals what the host observed, frame for frame
    # (ENTER / EXIT motor mode are mode frames, not commands; every frame but the silenced ones is answered)
    assert st["commands"] == out["sent_total"] - 2, (st, out)
    assert st["silenced"] == out["silent_phase"]["unanswered"], (st, out)
    assert st["replies"] == out["sent_total"] - st["silenced"], (st, out)
    assert st["rig"]["drives"][0]["motor_mode"] is False
