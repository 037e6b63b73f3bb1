"""Serial sensors in the torque loop: a staleness watchdog on every sensor, and e-stop by serial input.

One ``SerialSensorBridge`` (reader thread) per port; ``SensorWatch.check(now_ns)`` runs once per
torque cycle and returns fault values ``(source, kind, value, t_ns)``:

* ``STALE`` (value: age, s) when a sensor's newest sample is older than its ``stale_after_s``,
  or no sample arrived within ``startup_grace_s`` of start;
* ``ESTOP`` (value: the contact bits) when an ``role: estop`` board reports any contact;
* ``BUS_ERROR`` (value 0) for a serial error the bridge recorded (unplugged, EIO, ...).

Ages use ``time.monotonic_ns`` (the bridge's receive clock). A condition is reported once per
onset (the supervisor latches it anyway), not every cycle.
"""
from __future__ import annotations

import time
from typing import Callable

from firmware_bridge.serial_bridge import SerialSensorBridge
from firmware_bridge.serial_protocol import SensorType
from runtime.core.config import SerialSensorConfig

_TYPES = {"imu": SensorType.IMU, "foot_switch": SensorType.FOOT_SWITCH, "load_cell": SensorType.LOAD_CELL}


class SensorWatch:
    def __init__(self, sensors: list[SerialSensorConfig], *, bridge_factory: Callable[..., SerialSensorBridge] = SerialSensorBridge,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.sensors = list(sensors)
        self._clock = clock_ns
        self.bridges: dict[str, SerialSensorBridge] = {}
        for s in self.sensors:
            if s.port_url not in self.bridges:
                self.bridges[s.port_url] = bridge_factory(s.port_url, s.baudrate, source=f"serial.{s.name}")
        self._t0 = clock_ns()
        self._stale = {s.name: False for s in self.sensors}
        self._estop = {s.name: False for s in self.sensors}
        self._last_fault_ns = {url: -1 for url in self.bridges}

    def check(self, now_ns: int | None = None) -> list[tuple[str, str, float, int]]:
        now = self._clock() if now_ns is None else now_ns
        out: list[tuple[str, str, float, int]] = []
        for s in self.sensors:
            src = f"serial.{s.name}"
            got = self.bridges[s.port_url].latest(_TYPES[s.sensor_type], s.sensor_id)
            if got is None:
                age_ns = now - self._t0
                limit_ns = int((s.startup_grace_s + s.stale_after_s) * 1e9)
            else:
                sample, rx_ns = got
                age_ns = now - rx_ns
                limit_ns = int(s.stale_after_s * 1e9)
                if s.role == "estop":
                    pressed = bool(getattr(sample, "contacts", 0))
                    if pressed and not self._estop[s.name]:
                        out.append((src, "ESTOP", float(sample.contacts), now))
                    self._estop[s.name] = pressed
            stale = age_ns > limit_ns
            if stale and not self._stale[s.name]:
                out.append((src, "STALE", age_ns * 1e-9, now))
            self._stale[s.name] = stale
        for url, bridge in self.bridges.items():
            for f in bridge.faults():
                if f.t_ns > self._last_fault_ns[url]:
                    out.append((f.source, "BUS_ERROR", 0.0, f.t_ns))
                    self._last_fault_ns[url] = f.t_ns
        return out

    def close(self) -> None:
        for b in self.bridges.values():
            b.close()
