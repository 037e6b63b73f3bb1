"""Serial sensors in the torque loop: staleness watchdog and e-stop input, over a real pty pair."""
import os
import threading
import time

import pytest

from firmware_bridge.serial_protocol import FootSwitchSample, ImuSample, encode_frame
from runtime.core.config import SerialSensorConfig
from runtime.control.sensors import SensorWatch


@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    os.close(master)
    os.close(slave)


def wait_for(pred, timeout=2.0):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return True
        time.sleep(0.002)
    return False


def test_stale_sensor_and_estop_button(pty_port):
    master, path = pty_port
    cfg = [SerialSensorConfig(name="imu_shank", port_url=path, sensor_type="imu", sensor_id=1, stale_after_s=0.05,
                              startup_grace_s=1.0),
           SerialSensorConfig(name="estop", port_url=path, sensor_type="foot_switch", sensor_id=9, stale_after_s=0.2,
                              startup_grace_s=1.0, role="estop")]
    watch = SensorWatch(cfg)
    stop = threading.Event()
    pressed = threading.Event()

    def board():                               # the sensor board: IMU at 500 Hz, e-stop button at 50 Hz
        seq = 0
        while not stop.is_set():
            seq += 1
            os.write(master, encode_frame(ImuSample(1, seq, seq * 2000, (0.0, 0.0, 9.81), (0.0, 0.0, 0.0))))
            if seq % 10 == 0:
                os.write(master, encode_frame(FootSwitchSample(9, seq, seq * 2000, 1 if pressed.is_set() else 0)))
            time.sleep(0.002)

    th = threading.Thread(target=board, daemon=True)
    th.start()
    try:
        faults = []
        assert wait_for(lambda: watch.bridges[path].latest(2, 9) is not None)
        t_end = time.monotonic() + 0.3
        while time.monotonic() < t_end:         # streaming: no faults
            faults += watch.check()
            time.sleep(0.002)
        assert faults == []
        pressed.set()                           # e-stop button pressed
        assert wait_for(lambda: any(k == "ESTOP" for _, k, _, _ in watch.check()))
        stop.set()                              # the board goes quiet: both sensors go stale
        th.join()
        seen = []
        assert wait_for(lambda: (seen.extend(watch.check()) or
                                 {s for s, k, _, _ in seen if k == "STALE"} == {"serial.imu_shank", "serial.estop"}))
        ages = {s: v for s, k, v, _ in seen if k == "STALE"}
        assert 0.05 < ages["serial.imu_shank"] < 0.2    # reported soon after stale_after_s
    finally:
        stop.set()
        watch.close()


def test_no_first_sample_within_grace_is_stale(pty_port):
    _, path = pty_port
    watch = SensorWatch([SerialSensorConfig(name="load", port_url=path, sensor_type="load_cell", stale_after_s=0.01,
                                            startup_grace_s=0.05)])
    try:
        assert watch.check() == []
        assert wait_for(lambda: any(k == "STALE" for _, k, _, _ in watch.check()), timeout=1.0)
    finally:
        watch.close()
