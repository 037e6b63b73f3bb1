"""The estimation pipeline: stages run in order once per estimation cycle (default 60 Hz).

A stage is any object with a ``name`` and ``step(frame: PipelineFrame) -> None``
that reads and writes fields of the shared per-cycle frame. The pipeline times
every stage (recorded into the loop's stage statistics) and publishes the
assistance torque with the frame's capture timestamp to the torque loop.

Pipelines built here:

* ``synthetic_assistance_pipeline``: a time-based gait phase and the fixed
  phase-based knee profile (no estimation; for loop and fault tests).
* ``replay_estimation_pipeline``: a recorded marker trial replayed frame by frame
  through the real estimation chain (``runtime.estimation.chain``: IK -> GRF -> inverse
  dynamics -> KAM/KEM -> static optimisation -> synergies -> knee contact force).

A stage may expose ``substage_s`` (name -> seconds of its last step): the pipeline
then records those parts instead of the stage's total, so the per-stage latency
report shows the estimation chain stage by stage. A stage may also declare
``telemetry_topics() -> list[TopicSpec]``: the session registers them and writes
one message per cycle from the frame.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from controllers.phase_profile import CadencePhaseEstimator, PhaseProfileController, PhaseProfileParams
from runtime.pipeline.frame import PipelineFrame, Stage, TopicSpec

if TYPE_CHECKING:  # annotations only: none of these imports runtime.pipeline
    from controllers.assistance import AssistanceOutput, AssistanceStage, StageInput
    from runtime.core.config import DeviceConfig, SubjectProfile
    from runtime.estimation.chain import EstimateFrame, KinematicsToLoads, MarkerRecording


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
        self.stages: list[Stage] = stages
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
            parts = getattr(stage, "substage_s", None)
            if parts:
                total = (t2 - t) * 1e-9
                for name, sec in parts.items():
                    record(name, sec)
                    total -= sec
                record(stage.name, max(total, 0.0))
            else:
                record(stage.name, (t2 - t) * 1e-9)
            t = t2
        return frame

    def close(self) -> dict[str, Any]:
        """Stop what the stages started (e.g. the vision process); their final counters by stage name."""
        out: dict[str, Any] = {}
        for stage in self.stages:
            fn = getattr(stage, "close", None)
            if fn is not None:
                try:
                    out[stage.name] = fn()
                except Exception as exc:  # a stage that fails to close must not stop the others
                    out[stage.name] = {"errors": [f"{type(exc).__name__}: {exc}"]}
        return out

    def telemetry_topics(self) -> list[TopicSpec]:
        """Every topic the stages declare (see :class:`TopicSpec`)."""
        out: list[TopicSpec] = []
        for stage in self.stages:
            fn = getattr(stage, "telemetry_topics", None)
            if fn is not None:
                out.extend(fn())
        return out


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


class ReplayCapture:
    """A recorded marker trial as the input: one frame per executed cycle, wrapping at the end.

    The capture time is the cycle's start time; ``frame.t_s`` the recording's own time. A missed
    deadline delays the replay rather than dropping a frame (so a live replay equals the offline
    run frame for frame); at the end the recording restarts and the estimation chain is reset.
    """

    name = "capture"

    def __init__(self, recording: MarkerRecording, now_ns: Callable[[], int], loop: bool = True) -> None:
        self.recording = recording
        self._now = now_ns
        self.loop = loop
        self.i = 0
        self.wraps = 0

    def step(self, frame: PipelineFrame) -> None:
        rec = self.recording
        n = rec.time_s.size
        frame.capture_ns = self._now()
        frame.restart = False
        if self.i >= n:
            if not self.loop:
                frame.markers_m = None
                return
            self.i = 0
            self.wraps += 1
            frame.restart = True
        frame.markers_m = rec.markers_m[self.i]
        frame.t_s = float(rec.time_s[self.i])
        self.i += 1


class EstimationStage:
    """Runs ``runtime.estimation.chain.KinematicsToLoads`` on ``frame.markers_m``; the chain's parts are timed."""

    name = "estimation"

    def __init__(self, estimator: KinematicsToLoads) -> None:
        self.estimator = estimator
        self.substage_s: dict[str, float] = {}

    def step(self, frame: PipelineFrame) -> None:
        if frame.markers_m is None:          # no new input this cycle: hold the last estimate
            frame.new_estimate = False
            self.substage_s = {}
            return
        if frame.restart:
            self.estimator.reset()
        frame.estimate = self.estimator.step(frame.markers_m, frame.t_s)
        frame.new_estimate = True
        self.substage_s = frame.estimate.stage_s

    def telemetry_topics(self) -> list[TopicSpec]:
        from runtime.estimation import topics as estimation_topics

        return estimation_topics.topics(self.estimator)


class ControllerAssistanceStage:
    """The assistance controller (``controllers.assistance.AssistanceStage``: gait phase + the configured strategy +
    the one command limiter) on the estimate of this cycle, for the assisted joint; zero on the other joints.

    Inputs from the estimate (flexion positive, as the controller expects): the knee angle of ``side``, the
    biological knee moment (the knee coordinate's generalised force), the muscle activations of that leg in the
    synergy's order, the vertical GRF of that foot. An invalid estimate or a stale input gives NaN moment and
    activations: the controller ramps to zero and flags it. The torque loop's safety supervisor limits again.
    """

    name = "assistance"

    def __init__(self, controller: AssistanceStage, joint_names: list[str], joint: str | None, side: str,
                 now_ns: Callable[[], int], muscle_names: tuple[str, ...] = ()) -> None:
        self.controller = controller
        self.joint_idx = joint_names.index(joint) if joint else 0
        self.side = side[0]
        self._foot = 0 if self.side == "r" else 1        # runtime.estimation.chain FEET order: right, left
        self._now = now_ns
        shape = getattr(controller.strategy, "shape", None)
        self._act_idx: np.ndarray | None = None
        if shape is not None and muscle_names:
            pos = {n: i for i, n in enumerate(muscle_names)}
            self._act_idx = np.array([pos[f"{m}_{self.side}"] for m in shape.muscle_names], dtype=int)
        self._knee: int | None = None
        self.last: AssistanceOutput | None = None        # the controller's output of the latest step

    def step(self, frame: PipelineFrame) -> None:
        out = self.controller.step(self._input(frame.estimate, frame.stale))
        self.last = out
        for i in range(len(frame.assistance_nm)):
            frame.assistance_nm[i] = 0.0
        frame.assistance_nm[self.joint_idx] = out.torque_nm

    def _input(self, est: EstimateFrame | None, stale: bool) -> StageInput:
        """The controller's input now: no estimate yet gives NaN angle and moment; an invalid estimate or a stale
        input the knee angle (s, rad, N*m) with NaN moment and neither activations nor GRF."""
        from controllers.assistance import StageInput

        t_s = self._now() * 1e-9
        nan = float("nan")
        if est is None:
            return StageInput(t_s=t_s, knee_flexion_rad=nan, knee_moment_nm=nan, activations=None, vertical_grf_n=None)
        if self._knee is None:
            self._knee = list(est.coordinate_names).index(f"knee_angle_{self.side}")
        knee = float(est.coordinates_rad[self._knee])
        if not (est.valid and not stale):
            return StageInput(t_s=t_s, knee_flexion_rad=knee, knee_moment_nm=nan, activations=None, vertical_grf_n=None)
        return StageInput(t_s=t_s, knee_flexion_rad=knee, knee_moment_nm=-est.knee_moment_nm,
                          activations=est.activation[self._act_idx] if self._act_idx is not None else None,
                          vertical_grf_n=float(est.grf_n[self._foot, 2]))


def assistance_stage(device: DeviceConfig, subject: SubjectProfile, joint_names: list[str], side: str,
                     now_ns: Callable[[], int], estimator: KinematicsToLoads) -> ControllerAssistanceStage:
    """The configured assistance controller (``device.assistance``) as a pipeline stage."""

    from runtime.wiring import assistance_controller

    ctrl = assistance_controller(device, subject)
    return ControllerAssistanceStage(ctrl, joint_names, device.assistance.joint, side, now_ns,
                                     tuple(getattr(estimator, "muscle_names", ())))


def replay_estimation_pipeline(n_joints: int, now_ns: Callable[[], int], *, estimator: KinematicsToLoads,
                               recording: MarkerRecording, assistance: ControllerAssistanceStage,
                               extra: list[Stage] | None = None) -> Pipeline:
    """Recorded markers -> the real estimation chain -> the assistance controller."""
    stages: list[Stage] = [ReplayCapture(recording, now_ns), EstimationStage(estimator), assistance]
    stages.extend(extra or [])
    return Pipeline(stages, n_joints, now_ns,
                    f"replay: {recording.name} at {recording.rate_hz:g} Hz (held to the loop rate) -> IK -> causal filter "
                    f"-> GRF from kinematics -> inverse dynamics -> KAM/KEM -> static optimisation -> synergies -> "
                    f"knee contact force -> {_describe(assistance)}")


def landmark_estimation_pipeline(n_joints: int, now_ns: Callable[[], int], *, estimator: KinematicsToLoads,
                                 capture: Stage, source_description: str, assistance: ControllerAssistanceStage,
                                 extra: list[Stage] | None = None) -> Pipeline:
    """Landmarks (from the vision process, or precomputed and released on the camera's timeline) held to the
    loop rate -> the estimation chain -> the assistance controller."""
    stages: list[Stage] = [capture, EstimationStage(estimator), assistance]
    stages.extend(extra or [])
    return Pipeline(stages, n_joints, now_ns,
                    f"{source_description} -> landmarks held to the loop rate -> IK (BlazePose landmarks) -> causal "
                    f"filter -> GRF from kinematics -> inverse dynamics -> KAM/KEM -> static optimisation -> synergies "
                    f"-> knee contact force -> {_describe(assistance)}")


def _describe(stage: ControllerAssistanceStage) -> str:
    p = stage.controller.strategy.params
    return (f"assistance '{p.strategy}' (level {p.level:g}, ramp-in {p.ramp_in_s:g} s, limits {p.torque_limit_nm:g} N*m "
            f"and {p.slew_limit_nm_per_s:g} N*m/s, gait phase from {stage.controller.gait.params.source})")
