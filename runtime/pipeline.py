"""The estimation pipeline: stages run in order once per estimation cycle (default 60 Hz).

A stage is any object with a ``name`` and ``step(frame: PipelineFrame) -> None``
that reads and writes fields of the shared per-cycle frame. The pipeline times
every stage (recorded into the loop's stage statistics) and publishes the
assistance torque with the frame's capture timestamp to the torque loop.

Until the vision-to-activation stages exist (issues 4-7, 9), the default
pipeline is ``synthetic_assistance_pipeline``: a time-based gait phase and the
fixed phase-based knee profile. It says so wherever it runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from controllers.phase_profile import CadencePhaseEstimator, PhaseProfileController, PhaseProfileParams


@dataclass(slots=True)
class PipelineFrame:
    """What flows through one estimation cycle. Reused between cycles."""

    index: int = 0
    capture_ns: int = 0                    # monotonic capture time of the input
    gait_phase: float = 0.0                # [0, 1), heel strike = 0
    assistance_nm: list[float] = field(default_factory=list)   # per joint, flexion positive
    publish: bool = True                   # False: this cycle publishes no command (fault injection)


class Stage(Protocol):
    name: str

    def step(self, frame: PipelineFrame) -> None: ...


class SyntheticCapture:
    """Stands in for a camera: the capture time is the cycle's start time."""

    name = "capture"

    def __init__(self, now_ns: Callable[[], int]) -> None:
        self._now = now_ns

    def step(self, frame: PipelineFrame) -> None:
        frame.capture_ns = self._now()


class GaitPhaseStage:
    name = "gait_phase"

    def __init__(self, estimator: CadencePhaseEstimator) -> None:
        self.estimator = estimator

    def step(self, frame: PipelineFrame) -> None:
        frame.gait_phase = self.estimator.phase(frame.capture_ns)


class PhaseAssistanceStage:
    name = "assistance"

    def __init__(self, controller: PhaseProfileController) -> None:
        self.controller = controller

    def step(self, frame: PipelineFrame) -> None:
        tau = self.controller.torque_nm(frame.gait_phase)
        for i in range(len(frame.assistance_nm)):
            frame.assistance_nm[i] = tau


class PythonSpinStage:
    """Fault injection: spin in pure Python (holding the GIL) for ``spin_s`` at cycle ``at_cycle``."""

    name = "spin"

    def __init__(self, at_cycle: int, spin_s: float) -> None:
        self.at_cycle = at_cycle
        self.spin_s = spin_s
        self.spun = False

    def step(self, frame: PipelineFrame) -> None:
        if frame.index == self.at_cycle and not self.spun:
            self.spun = True
            end = time.perf_counter() + self.spin_s
            x = 0
            while time.perf_counter() < end:
                x += 1


class Pipeline:
    """Runs ``stages`` in order and reports each one's duration through ``record(name, seconds)``."""

    description: str

    def __init__(self, stages: list[Stage], n_joints: int, now_ns: Callable[[], int], description: str) -> None:
        self.stages = stages
        self.frame = PipelineFrame(assistance_nm=[0.0] * n_joints)
        self._now = now_ns
        self.description = description

    def step(self, index: int, record: Callable[[str, float], None]) -> PipelineFrame:
        frame = self.frame
        frame.index = index
        frame.publish = True
        now = self._now
        t = now()
        for stage in self.stages:
            stage.step(frame)
            t2 = now()
            record(stage.name, (t2 - t) * 1e-9)
            t = t2
        return frame


def synthetic_assistance_pipeline(n_joints: int, assistance_level: float, now_ns: Callable[[], int],
                                  cadence_hz: float = 0.9, extra: list[Stage] | None = None) -> Pipeline:
    """The stand-in pipeline: time-based gait phase -> fixed phase-based knee profile."""
    stages: list[Stage] = [
        SyntheticCapture(now_ns),
        GaitPhaseStage(CadencePhaseEstimator(cadence_hz, t0_ns=now_ns())),
        PhaseAssistanceStage(PhaseProfileController(PhaseProfileParams(), assistance_level)),
    ]
    stages.extend(extra or [])
    return Pipeline(stages, n_joints, now_ns,
                    "synthetic: time-based gait phase at %.2f strides/s -> fixed phase-based knee profile "
                    "(the vision-to-activation stages are not built yet)" % cadence_hz)
