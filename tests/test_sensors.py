"""Serial sensors in the torque loop: staleness watchdog and e-stop input, over a real pty pair."""
import os
import pytest

from firmware_bridge.serial_protocol import FootSwitchSample, ImuSample, SensorType, encode_frame
from runtime.core.config import SerialSensorConfig
from runtime.control.sensors import SensorWatch


@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    os.close(master)
    os.close(slave)


def _imu(seq):
    return encode_frame(ImuSample(1, seq, seq * 2000, (0.0, 0.0, 9.81), (0.0, 0.0, 0.0)))


def _button(seq, pressed):
    return encode_frame(FootSwitchSample(9, seq, seq * 2000, 1 if pressed else 0))


CFG = dict(imu=dict(name="imu_shank", sensor_type="imu", sensor_id=1, stale_after_s=0.05, startup_grace_s=1.0),
           estop=dict(name="estop", sensor_type="foot_switch", sensor_id=9, stale_after_s=0.2, startup_grace_s=1.0,
                      role="estop"))


def test_stale_sensor_and_estop_button(pty_port):
    """Over a real pty: samples are received, the button press is an ESTOP, silence is STALE. Ages are judged
    at explicit times relative to each sample's receive stamp (``check(now_ns)``), never by sleeping."""
    master, path = pty_port
    watch = SensorWatch([SerialSensorConfig(port_url=path, **CFG["imu"]), SerialSensorConfig(port_url=path, **CFG["estop"])])
    bridge = watch.bridges[path]
    try:
        # the board: 20 IMU samples, then the (released) e-stop button; in stream order, so rx(imu) <= rx(button)
        os.write(master, b"".join(_imu(k) for k in range(1, 21)) + _button(21, False))
        imu = bridge.wait_for_sample(SensorType.IMU, 1, timeout_s=30.0, min_sequence=20)
        button = bridge.wait_for_sample(SensorType.FOOT_SWITCH, 9, timeout_s=30.0, min_sequence=21)
        assert imu is not None and button is not None, "the pty delivered no samples in 30 s"
        assert imu[1] <= button[1]
        assert watch.check(imu[1]) == []                       # streaming: every sample fresh at its own arrival
        os.write(master, _button(22, True))                     # e-stop button pressed
        pressed = bridge.wait_for_sample(SensorType.FOOT_SWITCH, 9, timeout_s=30.0, min_sequence=22)
        assert pressed is not None and pressed[0].contacts == 1
        seen = watch.check(pressed[1])
        assert ("serial.estop", "ESTOP") in {(src, k) for src, k, _, _ in seen}
        assert not [f for f in seen if f[0] == "serial.estop" and f[1] == "STALE"]
        # the board goes quiet: 1 s after the last button sample both sensors are stale, with their exact ages
        now = pressed[1] + 1_000_000_000
        seen += watch.check(now)
        stale = {src: age for src, k, age, _ in seen if k == "STALE"}
        assert set(stale) == {"serial.imu_shank", "serial.estop"}
        assert stale["serial.estop"] == pytest.approx(1.0, abs=1e-9)
        assert not [f for f in seen if f[1] == "BUS_ERROR"]
        assert watch.check(now + 1) == []                       # reported once per onset, not every cycle
    finally:
        watch.close()


class _FakeBridge:
    """A bridge whose latest sample and receive time the test sets."""

    def __init__(self, port_url, baudrate, source):
        self.samples: dict[tuple[int, int], tuple[object, int]] = {}

    def latest(self, sensor_type, sensor_id):
        return self.samples.get((int(sensor_type), sensor_id))

    def faults(self):
        return []

    def close(self):
        pass


def test_staleness_is_reported_just_past_stale_after_s():
    """The watchdog's thresholds at injected times: fresh up to ``stale_after_s``, STALE 1 ms past it (age
    reported), once per onset; a new sample clears it and a second silence reports again."""
    t = [5_000_000_000]
    watch = SensorWatch([SerialSensorConfig(port_url="fake://", **CFG["imu"])], bridge_factory=_FakeBridge,
                        clock_ns=lambda: t[0])
    bridge = watch.bridges["fake://"]
    rx = 6_000_000_000
    bridge.samples[(int(SensorType.IMU), 1)] = (ImuSample(1, 1, 0, (0.0, 0.0, 9.81), (0.0, 0.0, 0.0)), rx)
    assert watch.check(rx + 50_000_000) == []                    # exactly stale_after_s: still fresh
    got = watch.check(rx + 51_000_000)
    assert [(s, k) for s, k, _, _ in got] == [("serial.imu_shank", "STALE")]
    assert got[0][2] == pytest.approx(0.051, abs=1e-12) and got[0][3] == rx + 51_000_000
    assert watch.check(rx + 200_000_000) == []                   # latched by the supervisor: not repeated
    bridge.samples[(int(SensorType.IMU), 1)] = (ImuSample(1, 2, 0, (0.0, 0.0, 9.81), (0.0, 0.0, 0.0)), rx + 300_000_000)
    assert watch.check(rx + 300_000_000) == []
    assert [k for _, k, _, _ in watch.check(rx + 351_000_000)] == ["STALE"]


def test_no_first_sample_within_grace_is_stale(pty_port):
    """No sample ever: STALE only once ``startup_grace_s + stale_after_s`` passed since start (injected clock)."""
    _, path = pty_port
    t = [1_000_000_000]
    watch = SensorWatch([SerialSensorConfig(name="load", port_url=path, sensor_type="load_cell", stale_after_s=0.01,
                                            startup_grace_s=0.05)], clock_ns=lambda: t[0])
    try:
        assert watch.check() == []
        t[0] += 60_000_000                                       # exactly grace + stale_after
        assert watch.check() == []
        t[0] += 1_000_000
        got = watch.check()
        assert [k for _, k, _, _ in got] == ["STALE"] and got[0][2] == pytest.approx(0.061, abs=1e-12)
    finally:
        watch.close()
