"""The one torque cycle (controllers.torque_cycle): the same commands from every runner, staleness from capture,
the tissue compensator inside the cycle and behind the supervisor, and the start-up refusal without its artifact.

Runners: ``TorqueLoop`` in process on a FakeClock; the ROS 2 ``SafetyNode`` and ``CanBridgeNode`` through their
cycle functions (``_take_request``/``_take_command`` and ``_cycle_step``), called directly: no rclpy context, no
spinning, no network. The HIL host (hil/cuff_validation.py) runs the same class in simulated time.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from controllers.safety import JointLimits, SafetyParams, SafetyState
from controllers.tissue_compensator import ARTIFACT_VERSION, TissueCompensator, TissueSurrogate, load_artifact
from controllers.torque_cycle import TorqueCycle, TorqueCycleParams
from firmware_bridge.clock import FakeClock
from runtime.control.drive import Drive, DriveResult, JointStates
from runtime.control.torque_loop import TorqueLoop
from runtime.core.channels import EVENT_DTYPE, STATE_NAMES, Slot, command_dtype, torque_record_dtype
from runtime.core.shared_memory import ControlBlock, LatestValueBuffer, RecordRing

PERIOD_NS = 2_000_000                   # 500 Hz
CAPTURE_TO_PUBLISH_NS = 7_000_000       # the estimator publishes 7 ms after the frame's capture


def knee_at(k: int) -> tuple[float, float]:
    """A gait-like knee (rad, rad/s) at torque cycle k: 1 Hz between 0.2 and 1.2 rad."""
    w = 2 * math.pi
    t = k * PERIOD_NS * 1e-9
    return 0.7 + 0.5 * math.sin(w * t), 0.5 * w * math.cos(w * t)


class ScriptedDrive(Drive):
    """Joint state from a script (position override by cycle), every write recorded (N*m)."""

    def __init__(self, override: dict[int, float] | None = None):
        self.writes: list[list[float]] = []
        self.k = 0
        self.override = override or {}

    def enable(self, t_ns):
        self.enabled = True

    def disable(self, t_ns):
        self.enabled = False

    def write(self, torque_nm, t_ns):
        self.writes.append(list(torque_nm))
        return DriveResult.OK

    def read(self, out: JointStates, t_ns):
        pos, vel = knee_at(self.k)
        out.position_rad[0] = self.override.get(self.k, pos)
        out.velocity_rad_s[0] = vel
        out.rx_ns[0] = t_ns
        self.k += 1
        return DriveResult.OK


def script(kind: str, cycles: int) -> list[list[tuple[int, int, float, float]]]:
    """Per torque cycle, the commands published before it: (frame, capture offset ns, torque N*m, knee rad).
    ``stale_frozen``: from cycle 200 the camera repeats its last frame (the estimator keeps publishing with the old
    capture time); ``stale_silent``: from cycle 200 nothing is published; ``envelope``: the joint leaves its range."""
    out: list[list[tuple[int, int, float, float]]] = [[] for _ in range(cycles)]
    frame, frozen = 0, None
    for k in range(0, cycles, 8):                      # ~60 Hz
        if kind == "stale_silent" and k >= 200:
            break
        if kind == "stale_frozen" and k >= 200 and frozen is None:
            frozen = k
        src = frozen if frozen is not None else k
        frame += 1
        tau = -10.0 * max(0.0, math.sin(2 * math.pi * src / 500)) + 2.0 * math.cos(0.05 * src)
        out[k].append((frame, src, tau, knee_at(src)[0]))
    return out


def capture_time(t0: int, src_cycle: int) -> int:
    return t0 + src_cycle * PERIOD_NS - CAPTURE_TO_PUBLISH_NS


def run_torque_loop(device, kind: str, cycles: int = 400):
    """TorqueLoop on a FakeClock; returns (writes, now per cycle, command inputs per cycle, records, events)."""
    clock = FakeClock()
    n = len(device.joints)
    command, control = LatestValueBuffer(command_dtype(n)), ControlBlock(Slot.N)
    records, events = RecordRing(torque_record_dtype(n), 4096), RecordRing(EVENT_DTYPE, 1024)
    drive = ScriptedDrive({250: 5.0} if kind == "envelope" else None)
    loop = TorqueLoop(device, drive, clock, command, control, records, events)
    cmd = np.zeros((), dtype=command_dtype(n))
    plan = script(kind, cycles)
    nows: list[int] = []
    inputs: list[list[tuple[int, int, int, float, float]]] = []
    t0 = clock.now_ns()
    control[Slot.REQ_ACTIVE] = 1

    def step(info):
        got = []
        for frame, src, tau, knee in plan[info.index]:
            cap, wr = capture_time(t0, src), clock.now_ns()
            cmd["frame_index"], cmd["capture_ns"], cmd["write_ns"] = frame, cap, wr
            cmd["torque_nm"], cmd["knee_rad"] = [tau], knee
            command.write(cmd)
            got.append((frame, cap, wr, tau, knee))
        inputs.append(got)
        nows.append(info.start_ns)
        clock.advance(50_000)
        loop.step(info)

    loop.loop.run(step, cycles=cycles)
    out = (drive.writes, nows, inputs, records.drain(), events.drain(), loop)
    for ch in (command, control, records, events):
        ch.close()
    return out


def node(cls, device, **setup):
    """A ROS 2 node object with only its cycle set up (no rclpy context: __init__ is not run)."""
    pytest.importorskip("rclpy", reason="rclpy is not installed: the ROS 2 runners cannot be built")
    n = cls.__new__(cls)
    n.device = device
    n._setup_cycle(**setup)
    return n


def run_safety_node(device, nows, inputs, kind: str) -> list[list[float]]:
    from runtime.ros2.nodes import SafetyNode

    sn = node(SafetyNode, device, rate_hz=device.torque_loop.rate_hz)
    sn.armed, sn.activated_ns = True, min(nows) - 1
    out = []
    for k, now in enumerate(nows):
        for frame, cap, wr, tau, knee in inputs[k]:
            sn._take_request([tau], cap, wr, knee)
        pos, vel = knee_at(k)
        sn._joint_msgs.append((0, 5.0 if (kind == "envelope" and k == 250) else pos, vel))
        sn._cycle_step(now)
        out.append(list(sn.commanded))
    return out


def run_can_bridge(device, nows, inputs, kind: str) -> list[list[float]]:
    from runtime.ros2.nodes import CanBridgeNode

    drive = ScriptedDrive({250: 5.0} if kind == "envelope" else None)
    cb = node(CanBridgeNode, device, rate_hz=device.torque_loop.rate_hz,
              stale_after_s=device.torque_loop.stale_after_s, drive=drive,
              interpolation=device.torque_loop.interpolation)
    cb.armed, cb.enabled, cb.active, cb.activated_ns = True, True, True, min(nows) - 1
    for k, now in enumerate(nows):
        for frame, cap, wr, tau, knee in inputs[k]:
            cb._take_command([tau], cap, wr)
        cb._cycle_step(now)
    return drive.writes


@pytest.mark.parametrize("kind", ["stale_frozen", "stale_silent", "envelope"])
def test_every_runner_sends_identical_commands_bit_for_bit(configs, kind):
    device = configs[0]
    writes, nows, inputs, recs, _ev, _loop = run_torque_loop(device, kind)
    assert max(abs(w[0]) for w in writes) > 3.0                     # torque actually flowed
    assert writes[-1] == [0.0]                                      # and the fault faded it out
    safety = run_safety_node(device, nows, inputs, kind)
    bridge = run_can_bridge(device, nows, inputs, kind)
    assert safety == writes                                         # float equality, every cycle
    assert bridge == writes


@pytest.mark.parametrize("kind", ["stale_frozen", "stale_silent"])
def test_frozen_camera_fades_within_the_limit_plus_one_fade(configs, kind):
    """The same frame repeated (new commands with the old capture time), or no frame at all: STALE latched and
    logged, and the torque exactly zero from (last capture + stale_after_s + fade_time_s) on."""
    device = configs[0]
    writes, nows, inputs, recs, events, loop = run_torque_loop(device, kind)
    last_capture = max(cap for got in inputs for (_f, cap, _w, _t, _k) in got)
    if kind == "stale_frozen":                                       # the estimator kept writing after the freeze
        assert max(wr for got in inputs for (_f, _c, wr, _t, _k) in got) > last_capture + 0.1e9
    limit = last_capture + (device.torque_loop.stale_after_s + device.safety.fade_time_s) * 1e9
    cmd = np.array([w[0] for w in writes])
    t = np.array(nows)
    assert np.all(cmd[t > limit + PERIOD_NS] == 0.0)
    assert np.any(cmd[t < last_capture + device.torque_loop.stale_after_s * 1e9] != 0.0)
    stale = [e for e in events if e["kind"] == b"STALE" and e["latched"]]
    assert len(stale) == 1 and stale[0]["value"] > device.torque_loop.stale_after_s
    assert [f.kind.value for f in loop.supervisor.latched] == ["STALE"]
    assert recs["stale"][-1] and not recs["stale"][0]                # the per-cycle record says so too
    assert np.max(np.abs(recs["commanded_nm"][:, 0])) <= device.joints[0].torque_limit_nm


def _cycle(compensator=None, **kw) -> TorqueCycle:
    sp = SafetyParams(joints=(JointLimits("knee", 18.0, 300.0, -0.2, 2.6, 25.0),), **kw)
    return TorqueCycle(TorqueCycleParams(safety=sp, estimation_period_s=1 / 60), compensator)


def test_staleness_counts_from_capture_not_from_publish():
    cyc = _cycle()
    cyc.supervisor.activate(0)
    cyc.new_command(1, capture_ns=0, write_ns=95_000_000, torque_nm=[4.0])     # published 95 ms after capture
    for now in range(96_000_000, 102_000_001, 2_000_000):
        cyc.interpolate(now)
        cyc.check_age(now)
        cyc.step(now)
    assert cyc.stale and cyc.age_ns == 102_000_000                    # 7 ms after its publish, yet stale
    assert [f.kind.value for f in cyc.supervisor.latched] == ["STALE"]


def test_compensator_output_beyond_the_limits_is_clipped_and_slewed():
    heavy = TissueSurrogate(c0_nm=0.0, knots_rad=(-0.2, 0.2), slopes_nm_per_rad=(100.0,), b_nm_s_per_rad=0.0,
                            exo_inertia_kg_m2=50.0)         # a huge link inertia: the compensator asks for far more
    cyc = _cycle(TissueCompensator(heavy))
    cyc.supervisor.activate(0)
    asked, sent = [], []
    for k in range(200):
        now = k * PERIOD_NS
        if k % 8 == 0:
            cyc.new_command(k, now - 5_000_000, now, [15.0], knee_at(k)[0])
        cyc.interpolate(now)
        cyc.check_age(now)
        cyc.knee_sensor(*knee_at(k))
        sent.append(cyc.step(now)[0])
        asked.append(cyc.motor_request[0])
    assert max(abs(a) for a in asked) > 100.0                        # the compensator asked beyond the limit
    assert max(abs(s) for s in sent) <= 18.0                         # the supervisor clipped it
    assert all(abs(b - a) <= 300.0 * 0.002 + 1e-12 for a, b in zip(sent, sent[1:]))   # and slewed it
    assert cyc.supervisor.state is SafetyState.ACTIVE


def test_compensation_uses_the_estimated_knee_interpolated_to_the_loop_rate():
    sur, _ = load_artifact()
    cyc = _cycle(TissueCompensator(sur))
    cyc.new_command(1, 0, 10_000_000, [0.0], knee_rad=0.50)
    cyc.new_command(2, 16_666_666, 26_666_666, [0.0], knee_rad=0.60)
    cyc.interpolate(26_666_666 + 8_333_333)                           # half an estimation period after the publish
    assert cyc.knee_rad == pytest.approx(0.55, abs=1e-6)
    assert cyc.knee_rad_s == pytest.approx(0.10 * 60, rel=1e-6)        # slope of the interpolation, rad/s


def _tissue_device(configs, **over):
    dev = configs[0].model_copy(deep=True)
    data = dev.model_dump(mode="json")
    data["assistance"]["tissue_compensation"] = True
    for k, v in over.items():
        data[k] = v
    return type(dev).model_validate(data)


def test_tissue_compensation_on_gives_the_same_commands_in_loop_and_safety_node(configs):
    device = _tissue_device(configs)
    writes, nows, inputs, _recs, _ev, loop = run_torque_loop(device, "stale_frozen")
    assert loop.cycle.compensator is not None
    rigid, *_ = run_torque_loop(configs[0], "stale_frozen")
    assert writes != rigid                                            # compensation changed the command
    assert run_safety_node(device, nows, inputs, "stale_frozen") == writes


def test_missing_or_wrong_artifact_refuses_to_start(configs, tmp_path, monkeypatch):
    from controllers import tissue_compensator as tc
    from runtime.wiring import torque_cycle_from

    device = _tissue_device(configs)
    doc = json.loads(tc.ARTIFACT_PATH.read_text())
    monkeypatch.setattr(tc, "ARTIFACT_PATH", tmp_path / "nowhere.json")
    with pytest.raises(ValueError, match="tissue_compensation = true.*nowhere.json.*refusing to start"):
        torque_cycle_from(device)
    doc["version"] = ARTIFACT_VERSION + 1
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    monkeypatch.setattr(tc, "ARTIFACT_PATH", old)
    with pytest.raises(ValueError, match=f"version.*expected 'tissue_compensator'/{ARTIFACT_VERSION}"):
        torque_cycle_from(device)
    assert torque_cycle_from(configs[0]).compensator is None           # off: no artifact needed


def test_exo_run_exits_2_without_the_artifact(configs, tmp_path, monkeypatch, capsys):
    import yaml

    from controllers import tissue_compensator as tc
    from runtime.cli.main import main

    device = _tissue_device(configs)
    dev_file = tmp_path / "device.yaml"
    dev_file.write_text(yaml.safe_dump(device.model_dump(mode="json")))
    monkeypatch.setattr(tc, "ARTIFACT_PATH", tmp_path / "missing.json")
    rc = main(["run", "--config", str(dev_file), "--seconds", "0.2", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "missing.json" in err and "tissue_compensation" in err
    assert not (tmp_path / "out" / "telemetry").exists()


def test_record_names_the_state_of_every_cycle(configs):
    writes, nows, _inputs, recs, _ev, _loop = run_torque_loop(configs[0], "envelope")
    states = [STATE_NAMES[int(s)] for s in recs["state"]]
    assert len(recs) == len(writes) == len(nows) and "ACTIVE" in states and states[-1] == "FAULTED"
    assert np.array_equal(recs["commanded_nm"][:, 0], [w[0] for w in writes])
    assert np.array_equal(recs["motor_request_nm"], recs["requested_nm"])     # compensation off: passed unchanged


def _over_virtual_can(device, calibration, channel: str, cycles: int = 300) -> tuple[list[float], list[float]]:
    """TorqueLoop -> AkCanDrive on python-can's ``virtual`` bus -> the emulated AK drive on the simulated knee; the
    estimator's command (a steady extension torque) carries the plant's knee angle. Returns (torque in each frame
    the emulated drive received, N*m; the loop's commanded torque)."""
    import can

    from firmware_bridge.ak_can import AkCanDrive
    from firmware_bridge.calibration import ActuatorCalibration
    from firmware_bridge.motor_tables import limits_for
    from hil.ak_emulator import EmulatedAkDrive, HilRig
    from hil.knee_plant import SimulatedKneePlant

    clock = FakeClock()
    host_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    rig_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    cal = ActuatorCalibration.from_mapping(calibration.actuators[0].model_dump())
    drive = AkCanDrive(host_bus, [cal], reply_timeout_s=device.safety.reply_timeout_s, clock_ns=clock.now_ns)
    emu = EmulatedAkDrive(limits_for(cal.model, cal.firmware), cal.can_id)
    plant = SimulatedKneePlant()
    rig = HilRig(rig_bus, [(emu, cal.direction, cal.zero_offset_rad)], plant, rate_hz=500.0, seed=3)
    n = len(device.joints)
    command, control = LatestValueBuffer(command_dtype(n)), ControlBlock(Slot.N)
    records, events = RecordRing(torque_record_dtype(n), 4096), RecordRing(EVENT_DTYPE, 1024)
    loop = TorqueLoop(device, drive, clock, command, control, records, events)
    cmd = np.zeros((), dtype=command_dtype(n))
    received: list[float] = []
    control[Slot.REQ_ACTIVE] = 1

    def step(info):
        if info.index % 8 == 0:
            cmd["frame_index"] += 1
            cmd["capture_ns"], cmd["write_ns"] = clock.now_ns() - 3_000_000, clock.now_ns()
            cmd["torque_nm"], cmd["knee_rad"] = [-6.0], plant.flexion_rad
            command.write(cmd)
        rig.service(info.start_ns)
        rig.step(PERIOD_NS * 1e-9)
        if emu.last_command is not None:
            received.append(emu.last_command.torque_nm)
        clock.advance(40_000)
        inner(info)

    inner, loop.step = loop.step, step
    try:
        loop.run(max_cycles=cycles)             # enables the drive (zero first), the cycles, final zero
        commanded = list(records.drain()["commanded_nm"][:, 0])
        assert loop.supervisor.latched == [], loop.supervisor.latched
    finally:
        host_bus.shutdown()
        rig_bus.shutdown()
        for ch in (command, control, records, events):
            ch.close()
    return received, commanded


def test_tissue_compensation_changes_the_torque_in_the_frames_the_drive_receives(configs, request):
    device, _, calibration = configs
    rigid, rigid_cmd = _over_virtual_can(device, calibration, f"tc-off-{request.node.name}")
    comp, comp_cmd = _over_virtual_can(_tissue_device(configs), calibration, f"tc-on-{request.node.name}")
    assert len(rigid) == len(comp) > 200
    diff = np.abs(np.array(comp) - np.array(rigid))
    assert np.max(np.abs(rigid)) > 3.0                               # torque reached the drive in both runs
    assert np.max(diff) > 0.05                                       # compensation changed what went on the wire
    limit = device.joints[0].torque_limit_nm
    assert max(abs(c) for c in comp_cmd) <= limit and max(abs(c) for c in rigid_cmd) <= limit


def test_without_a_knee_estimate_the_joint_angle_stands_in_and_is_counted():
    sur, _ = load_artifact()
    cyc = _cycle(TissueCompensator(sur))
    cyc.supervisor.activate(0)
    for k in range(60):
        now = k * PERIOD_NS
        if k % 8 == 0:
            cyc.new_command(k, now - 5_000_000, now, [-6.0])               # no knee angle (NaN)
        cyc.interpolate(now)
        cyc.check_age(now)
        cyc.observe_joint(0, *knee_at(k), now)
        cyc.step(now)
    assert cyc.knee_source_cycles == {"sensor": 0, "estimate": 0, "joint": 60}
    assert cyc.motor_request[0] != cyc.requested[0]                   # compensating, not silently rigid


class DeactivatingDrive(ScriptedDrive):
    """Reads DEACTIVATE from cycle ``at`` on, without reporting a fault of its own (the DriveBase contract allows it)."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def read(self, out: JointStates, t_ns):
        k = self.k
        super().read(out, t_ns)
        return DriveResult.DEACTIVATE if k >= self.at else DriveResult.OK

    def poll_faults(self):
        return []


def test_can_bridge_fades_on_the_drives_deactivate_like_the_torque_loop(configs):
    """A drive's DEACTIVATE read fades the bridge's output to zero and it stays zero (no re-activation by the next
    command): the same as TorqueLoop, not only when the drive also reports a fault."""
    from runtime.ros2.nodes import CanBridgeNode

    device = configs[0]
    drive = DeactivatingDrive(at=100)
    cb = node(CanBridgeNode, device, rate_hz=device.torque_loop.rate_hz,
              stale_after_s=device.torque_loop.stale_after_s, drive=drive, interpolation="hold")
    cb.armed, cb.enabled, cb.active, cb.activated_ns = True, True, True, -1
    fade_cycles = int(device.safety.fade_time_s * 1e9 / PERIOD_NS) + 2
    for k in range(100 + fade_cycles + 50):
        now = k * PERIOD_NS
        cb._take_command([-8.0], now - CAPTURE_TO_PUBLISH_NS, now)
        cb._cycle_step(now)
    w = [x[0] for x in drive.writes]
    assert min(w[:100]) < -3.0                                       # torque flowed before
    assert all(x == 0.0 for x in w[100 + fade_cycles:])              # faded and stays zero
    assert cb.watchdog.state is SafetyState.INACTIVE and not cb.armed


def test_unstamped_ros_command_has_no_capture_time_and_counts_stale():
    """A header stamp of 0 is an unknown capture time: capture 0 (stale, as a torque-loop command with capture_ns 0),
    never the reception time (which would make a re-published frozen command look fresh)."""
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from builtin_interfaces.msg import Time

    from runtime.ros2.nodes import _capture_ns

    rx, wall = 5_000_000_000, 1_700_000_000_000_000_000
    assert _capture_ns(Time(sec=0, nanosec=0), rx, wall) == 0
    cyc = _cycle()
    cyc.supervisor.activate(0)
    cyc.new_command(1, _capture_ns(Time(sec=0, nanosec=0), rx, wall), rx, [-5.0])
    cyc.check_age(rx)
    assert cyc.stale and cyc.supervisor.state is SafetyState.FAULTED
    stamped = Time(sec=(wall - 3_000_000) // 1_000_000_000, nanosec=(wall - 3_000_000) % 1_000_000_000)
    assert _capture_ns(stamped, rx, wall) == rx - 3_000_000           # a stamp 3 ms old: captured 3 ms before rx
    future = Time(sec=(wall + 10**9) // 10**9, nanosec=(wall + 10**9) % 10**9)
    assert _capture_ns(future, rx, wall) == rx                        # a future stamp: never after reception
