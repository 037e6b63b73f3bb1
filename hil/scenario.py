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

Today's plant is the in-process simulated knee (``bus.interface: sim``); the
emulated CAN drives of the HIL rig run the same scenarios when they exist.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from runtime.config import _Strict, load
from runtime.pipeline import PipelineFrame


class InjectedFault(_Strict):
    at_s: Annotated[float, Field(ge=0.0, le=3600.0, description="s after the start")]
    kind: Literal["pipeline_stall", "nan_command", "stop_commands", "estop", "fault_reset"]
    duration_s: Annotated[float, Field(ge=0.0, le=10.0, description="s (stall, stop_commands)")] = 0.0


class Scenario(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    device: str
    subject: str
    calibration: str
    duration_s: Annotated[float, Field(gt=0.0, le=3600.0, description="s")]
    faults: list[InjectedFault] = []


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
        self.applied: list[str] = []

    def step(self, frame: PipelineFrame) -> None:
        t = frame.index / self.rate_hz
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
                self._stop_until = frame.index + int(f.duration_s * self.rate_hz)
            elif f.kind == "estop":
                self.session.request_estop()
            elif f.kind == "fault_reset":
                self.session.request_fault_reset()
        if frame.index < self._stop_until:
            frame.publish = False
