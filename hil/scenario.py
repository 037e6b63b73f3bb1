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

``plant: {model: cuff}`` puts the reduced-order cuff between drive and leg (``hil.cuff_rom``); ``legs`` runs the
scenario once per leg (plant model, tissue compensation on/off) and reports them side by side
(``hil/scenarios/cuff.yaml``).
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


class SwingConfig(Strict):
    """The seated leg's own ("voluntary") swing in the plant: a sinusoid between two flexion angles."""

    cadence_hz: Annotated[float, Field(gt=0.0, le=3.0, description="Hz")] = 0.5
    flexion_min_rad: Annotated[float, Field(ge=-0.1, le=2.0, description="rad")] = 0.3
    flexion_max_rad: Annotated[float, Field(ge=0.0, le=2.4, description="rad")] = 1.5

    @model_validator(mode="after")
    def _range(self) -> "SwingConfig":
        if not self.flexion_min_rad < self.flexion_max_rad:
            raise ValueError(f"swing: flexion_min_rad = {self.flexion_min_rad} must be < flexion_max_rad = "
                             f"{self.flexion_max_rad}")
        return self


class PlantConfig(Strict):
    """The HIL plant process (used when the device bus is udp_multicast or socketcan).

    ``model``: ``rigid`` (the seated knee) or ``cuff`` (the knee behind the reduced-order cuff,
    ``hil.cuff_rom``; artefact ``cuff_model`` or the versioned one). ``priority`` / ``cpus``: the plant's
    SCHED_FIFO priority and CPU set; None: 5 above the device's torque-loop priority, on its estimation CPUs
    (why: ``hil/plant_realtime.py``) (``runtime/cli/plant_companion.py``). ``swing``: the leg's own swing."""

    rate_hz: Annotated[float, Field(ge=100.0, le=5000.0, description="Hz")] = 1000.0
    seed: int = 0
    model: Literal["rigid", "cuff"] = "rigid"
    cuff_model: str | None = None
    priority: Annotated[int | None, Field(ge=1, le=98)] = None
    cpus: list[Annotated[int, Field(ge=0, le=1023)]] | None = None
    swing: SwingConfig = SwingConfig()


class Leg(Strict):
    """One run of a comparison: its plant model and whether the tissue compensator is in the torque loop."""

    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
    plant: Literal["rigid", "cuff"]
    tissue_compensation: bool = False


class Scenario(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    device: str
    subject: str
    calibration: str
    duration_s: Annotated[float, Field(gt=0.0, le=3600.0, description="s")]
    faults: list[InjectedFault] = []
    plant: PlantConfig = PlantConfig()
    # a comparison (hil/scenarios/cuff.yaml): the same run once per leg, figures side by side
    replay: str | None = None                  # estimation input: a shared marker trial (e.g. PS_ss1); None: synthetic
    legs: list[Leg] = []
    discard_s: Annotated[float, Field(ge=0.0, le=600.0, description="s not scored at the start of each leg")] = 0.0
    # the compensator's knee angle: 'estimate' (the estimator's, carried by the command) or 'encoder' (withheld:
    # the replayed walker is not the rig's seated leg, so the drive's encoder stands in)
    compensator_knee: Literal["estimate", "encoder"] = "estimate"

    @model_validator(mode="after")
    def _legs(self) -> "Scenario":
        names = [leg.name for leg in self.legs]
        if len(set(names)) != len(names):
            raise ValueError(f"legs: names must be unique, got {names}")
        if self.legs and not self.discard_s < self.duration_s:
            raise ValueError(f"discard_s = {self.discard_s} must be < duration_s = {self.duration_s}")
        return self


def load_scenario(path: str | Path) -> tuple[Scenario, Path]:
    """The validated scenario and the folder its relative paths start from."""
    path = Path(path)
    return load(Scenario, path), path.resolve().parent
