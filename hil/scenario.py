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

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from models.io.typed_yaml import Strict, load


class InjectedFault(Strict):
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


class PlantConfig(Strict):
    """The HIL plant process (used when the device bus is udp_multicast or socketcan)."""

    rate_hz: Annotated[float, Field(ge=100.0, le=5000.0, description="Hz")] = 1000.0
    seed: int = 0


class Scenario(Strict):
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
