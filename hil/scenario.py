"""HIL scenarios: which configs, how long, and which faults are injected when.

A scenario is YAML (``hil/scenarios/*.yaml``)::

    name: stale_and_estop
    device: ../../launch/config/device.yaml        # relative to the scenario file
    subject: ../../launch/config/subject.yaml
    calibration: ../../launch/config/calibration.yaml
    duration_s: 8
    faults:
      - {at_s: 2.0, kind: pipeline_stall, duration_s: 0.2}   # a stage spins in pure Python
      - {at_s: 4.0, kind: fault_reset}                        # explicit operator reset
      - {at_s: 5.0, kind: nan_command}                        # the pipeline publishes NaN
      - {at_s: 6.0, kind: fault_reset}
      - {at_s: 7.0, kind: estop}                              # operator e-stop

With ``bus.interface: sim`` the plant is the in-process simulated knee. With
``udp_multicast`` (``launch/config/device_hil.yaml``) the plant is ``hil.plant_process``: emulated
AK drives speaking MIT-mode CAN frames on the same bus, in their own process, driving the knee;
kind ``plant`` injects drive/bus faults there (``hil.ak_emulator.FaultInjection`` fields: silent,
drop_replies, delay_replies_s, corrupt_replies, error_code, temperature_offset_c, error_frames,
bus_off, extra_torque_nm, wrong_id) for ``duration_s`` (0: until the end)::

      - {at_s: 3.0, kind: plant, duration_s: 0.3, plant: {silent: true}}   # drive stops replying
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from runtime.config import _Strict, load
from runtime.pipeline import PipelineFrame


class InjectedFault(_Strict):
    at_s: Annotated[float, Field(ge=0.0, le=3600.0, description="s after the start")]
    kind: Literal["pipeline_stall", "nan_command", "stop_commands", "estop", "fault_reset", "plant"]
    duration_s: Annotated[float, Field(ge=0.0, le=600.0, description="s (stall, stop_commands, plant)")] = 0.0
    plant: dict[str, Any] | None = None      # kind 'plant': hil.ak_emulator.FaultInjection fields
    motor_id: Annotated[int | None, Field(ge=1, le=255)] = None

    @model_validator(mode="after")
    def _plant_fields(self) -> "InjectedFault":
        if self.kind == "plant":
            if not self.plant:
                raise ValueError("kind 'plant' needs 'plant': {FaultInjection fields}, e.g. {silent: true}")
            from hil.ak_emulator import FaultInjection

            FaultInjection.from_mapping(self.plant)      # names and values checked now, not mid-run
        elif self.plant is not None:
            raise ValueError(f"'plant' is only for kind 'plant', not {self.kind!r}")
        return self


class PlantConfig(_Strict):
    """The HIL plant process (used when the device bus is udp_multicast or socketcan)."""

    rate_hz: Annotated[float, Field(ge=100.0, le=5000.0, description="Hz")] = 1000.0
    seed: int = 0


class Scenario(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    device: str
    subject: str
    calibration: str
    duration_s: Annotated[float, Field(gt=0.0, le=3600.0, description="s")]
    faults: list[InjectedFault] = []
    plant: PlantConfig = PlantConfig()


def load_scenario(path: str | Path) -> tuple[Scenario, Path]:
    """The validated scenario and the folder its relative paths start from."""
    path = Path(path)
    return load(Scenario, path), path.resolve().parent


class FaultInjectionStage:
    """Runs last in the pipeline and applies the scenario's faults at their times."""

    name = "fault_injection"

    def __init__(self, faults: list[InjectedFault], rate_hz: float, session) -> None:
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.rate_hz = rate_hz
        self.session = session
        self._stop_until = -1
        self._plant_clear: list[tuple[float, int | None]] = []   # (time s, motor id)
        self._t0_ns: int | None = None
        self.applied: list[str] = []

    def step(self, frame: PipelineFrame) -> None:
        if self._t0_ns is None:
            self._t0_ns = frame.capture_ns
        t = (frame.capture_ns - self._t0_ns) * 1e-9          # run time, s (not frame count: frames can be skipped)
        while self.faults and self.faults[0].at_s <= t:
            f = self.faults.pop(0)
            self.applied.append(f"{t:.3f}s {f.kind}")
            if f.kind == "pipeline_stall":
                end = time.perf_counter() + f.duration_s
                x = 0
                while time.perf_counter() < end:   # pure Python: holds the GIL
                    x += 1
            elif f.kind == "nan_command":
                for i in range(len(frame.assistance_nm)):
                    frame.assistance_nm[i] = math.nan
            elif f.kind == "stop_commands":
                self._stop_until = t + f.duration_s
            elif f.kind == "estop":
                self.session.request_estop()
            elif f.kind == "fault_reset":
                self.session.request_fault_reset()
            elif f.kind == "plant":
                if not self.session.plant_control({"faults": f.plant, "motor_id": f.motor_id}):
                    self.applied[-1] += " (no plant process: not applied)"
                if f.duration_s > 0:
                    self._plant_clear.append((t + f.duration_s, f.motor_id))
        for item in [c for c in self._plant_clear if c[0] <= t]:
            self._plant_clear.remove(item)
            self.session.plant_control({"faults": None, "motor_id": item[1]})
            self.applied.append(f"{t:.3f}s plant faults cleared")
        if t < self._stop_until:
            frame.publish = False
