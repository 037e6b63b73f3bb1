"""The estimation pipeline: stages run in order once per estimation cycle (default 60 Hz).

A stage is any object with a ``name`` and ``step(frame: PipelineFrame) -> None``
that reads and writes fields of the shared per-cycle frame. The pipeline times
every stage (recorded into the loop's stage statistics) and publishes the
assistance torque with the frame's capture timestamp to the torque loop.

Pipelines built here:

* ``synthetic_assistance_pipeline``: a time-based gait phase and the fixed
  phase-based knee profile (no estimation; for loop and fault tests).
* ``replay_estimation_pipeline``: a recorded marker trial replayed frame by frame
  through the real estimation chain (``runtime.estimation``: IK -> GRF -> inverse
  dynamics -> KAM/KEM -> static optimisation -> synergies -> knee contact force).

A stage may expose ``substage_s`` (name -> seconds of its last step): the pipeline
then records those parts instead of the stage's total, so the per-stage latency
report shows the estimation chain stage by stage. A stage may also declare
``telemetry_topics() -> list[TopicSpec]``: the session registers them and writes
one message per cycle from the frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from controllers.phase_profile import CadencePhaseEstimator, PhaseProfileController, PhaseProfileParams


@dataclass(slots=True)
class PipelineFrame:
    """What flows through one estimation cycle. Reused between cycles."""

    index: int = 0
    capture_ns: int = 0                    # monotonic capture time of the input
    gait_phase: float = 0.0                # [0, 1), heel strike = 0
    assistance_nm: list[float] = field(default_factory=list)   # per joint, flexion positive
    publish: bool = True                   # False: this cycle publishes no command (fault injection)
    t_s: float = 0.0                       # time of the input in its own timeline (s)
    markers_m: Any = None                  # (M, 3) world z up, for the estimation chain
    restart: bool = False                  # the input restarted (new recording / wrap): reset filters
    estimate: Any = None                   # runtime.estimation.EstimateFrame (the latest; held between inputs)
    new_estimate: bool = False             # the estimate was computed this cycle (else held)
    stale: bool = False                    # the input is older than its staleness limit: assistance must be zero
    vision_s: dict = field(default_factory=dict)   # per-stage seconds of the vision front end for a new frame


@dataclass(frozen=True)
class TopicSpec:
    """One per-cycle telemetry topic: ``snapshot(frame)`` copies what ``to_msg`` needs (the log writes later,
    on its own thread); ``snapshot`` returning None writes nothing this cycle."""

    topic: str
    msgtype: str
    to_msg: Callable[[Any], Any]
    snapshot: Callable[["PipelineFrame"], Any]


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

    def __init__(self, recording: Any, now_ns: Callable[[], int], loop: bool = True) -> None:
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
    """Runs ``runtime.estimation.KinematicsToLoads`` on ``frame.markers_m``; the chain's parts are timed."""

    name = "estimation"

    def __init__(self, estimator: Any) -> None:
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
        from runtime import estimation_topics

        return estimation_topics.topics(self.estimator)


class KneeMomentAssistanceStage:
    """Proportional joint-moment assistance from the estimated biological knee moment: ``level * gain * M_knee``
    on the knee joints, zero elsewhere and whenever the estimate is invalid. Limits are enforced downstream
    (the torque loop's command limits and the safety supervisor), never here alone."""

    name = "assistance"

    def __init__(self, joint_names: list[str], side: str, gain: float, level: float) -> None:
        if not (0.0 <= gain <= 1.0):
            raise ValueError(f"assistance gain = {gain!r}: allowed 0..1 (fraction of the biological moment)")
        sfx = "_" + side[0]
        self.knee_idx = [i for i, n in enumerate(joint_names) if "knee" in n and (n.endswith(sfx) or len(joint_names) == 1)]
        self.gain = gain * level

    def step(self, frame: PipelineFrame) -> None:
        est = frame.estimate
        for i in range(len(frame.assistance_nm)):
            frame.assistance_nm[i] = 0.0
        if est is None or not est.valid or frame.stale:
            return
        for i in self.knee_idx:
            frame.assistance_nm[i] = self.gain * est.knee_moment_nm


def replay_estimation_pipeline(n_joints: int, assistance_level: float, now_ns: Callable[[], int], *,
                               estimator: Any, recording: Any, joint_names: list[str], side: str,
                               gain: float = 0.2, extra: list[Stage] | None = None) -> Pipeline:
    """Recorded markers -> the real estimation chain -> proportional knee-moment assistance."""
    stages: list[Stage] = [ReplayCapture(recording, now_ns), EstimationStage(estimator),
                           KneeMomentAssistanceStage(joint_names, side, gain, assistance_level)]
    stages.extend(extra or [])
    return Pipeline(stages, n_joints, now_ns,
                    f"replay: {recording.name} at {recording.rate_hz:g} Hz (held to the loop rate) -> IK -> causal filter "
                    f"-> GRF from kinematics -> inverse dynamics -> KAM/KEM -> static optimisation -> synergies -> "
                    f"knee contact force -> {gain:g} x biological knee moment x level {assistance_level:g}")


def landmark_estimation_pipeline(n_joints: int, assistance_level: float, now_ns: Callable[[], int], *,
                                 estimator: Any, capture: Stage, source_description: str, joint_names: list[str],
                                 side: str, gain: float = 0.2, extra: list[Stage] | None = None) -> Pipeline:
    """Landmarks (from the vision process, or precomputed and released on the camera's timeline) held to the
    loop rate -> the estimation chain -> proportional knee-moment assistance."""
    stages: list[Stage] = [capture, EstimationStage(estimator),
                           KneeMomentAssistanceStage(joint_names, side, gain, assistance_level)]
    stages.extend(extra or [])
    return Pipeline(stages, n_joints, now_ns,
                    f"{source_description} -> landmarks held to the loop rate -> IK (BlazePose landmarks) -> causal "
                    f"filter -> GRF from kinematics -> inverse dynamics -> KAM/KEM -> static optimisation -> synergies "
                    f"-> knee contact force -> {gain:g} x biological knee moment x level {assistance_level:g}")
