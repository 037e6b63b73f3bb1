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
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from controllers.phase_profile import CadencePhaseEstimator, PhaseProfileController, PhaseProfileParams
from runtime.pipeline.frame import PipelineFrame, Stage, TopicSpec

if TYPE_CHECKING:  # annotations only: none of these imports runtime.pipeline
    from controllers.assistance import AssistanceOutput, AssistanceStage, StageInput
    from controllers.confidence_gate import ConfidenceGate
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
        frame.torso_m = None if rec.torso_markers_m is None else rec.torso_markers_m[self.i]
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
        frame.estimate = self.estimator.step(frame.markers_m, frame.t_s, reprojection_px=frame.reprojection_px,
                                             torso_m=frame.torso_m)
        frame.new_estimate = True
        self.substage_s = frame.estimate.stage_s

    def telemetry_topics(self) -> list[TopicSpec]:
        from runtime.estimation import topics as estimation_topics

        return estimation_topics.topics(self.estimator)


#: The assistance stage's events (confidence fades and restorations, strategy fallbacks) in the log, and the per-cycle
#: gate trace (confidence the gate saw, its scale 0..1). Events use the fault message type, ``source`` "assistance",
#: never latched (``runtime.report.html``'s "Assistance fades" table reads them).
T_ASSISTANCE_EVENTS = "/exo/assistance/events"
T_ASSISTANCE_GATE = "/exo/estimation/assistance_gate"
ASSISTANCE_EVENT_SOURCE = "assistance"
_EVENT_KINDS = {"fade": "CONFIDENCE_FADE", "restored": "CONFIDENCE_RESTORED", "fallback": "STRATEGY_FALLBACK",
                "primary": "STRATEGY_PRIMARY"}


class ControllerAssistanceStage:
    """The assistance controller (``controllers.assistance.AssistanceStage``: gait phase + the configured strategy, its
    fallback + the one command limiter) on the estimate of this cycle, for the assisted joint; zero on the other
    joints, with the confidence gate (``controllers.confidence_gate``) between the strategy and the limiter.

    Inputs from the estimate (flexion positive, as the controller expects): the knee angle of ``side``, the
    biological knee moment (the knee coordinate's generalised force), the muscle activations of that leg in the
    synergy's order, the vertical GRF of that foot. An invalid estimate or a stale input gives NaN moment and
    activations: the controller ramps to zero and flags it. The torque loop's safety supervisor limits again.

    The gate's confidence: the estimate's ``confidence`` (its parts ``confidence_names`` / ``confidence_parts``), and
    0 with the part ``estimate_valid`` for an invalid estimate, ``input_fresh`` for a stale input, ``estimate`` before
    the first one. Time is the pipeline clock's (``now_ns``), never the wall clock. Every gate event and strategy
    switch is kept (``events``), logged on :data:`T_ASSISTANCE_EVENTS` and counted in ``close()`` (summary.json).
    """

    name = "assistance"

    def __init__(self, controller: AssistanceStage, joint_names: list[str], joint: str | None, side: str,
                 now_ns: Callable[[], int], muscle_names: tuple[str, ...] = (),
                 gate: ConfidenceGate | None = None) -> None:
        self.controller = controller
        self.gate = gate
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
        self.confidence = float("nan")                   # what the gate saw at the latest step
        self.scale = 1.0                                 # the gate's scale at the latest step
        self.events: list[dict[str, Any]] = []           # every gate event and strategy switch, in order
        self._pending: deque[dict[str, Any]] = deque(maxlen=256)   # not yet written to the log
        self._cycles = 0
        self._closed_cycles = 0                          # cycles the gate's scale was 0

    def step(self, frame: PipelineFrame) -> None:
        t_ns = self._now()
        x = self._input(frame.estimate, frame.stale, t_ns)
        frame.knee_flexion_rad = x.knee_flexion_rad      # for the torque loop's tissue compensator (command record)
        if self.gate is not None:
            self.confidence, parts = self._confidence(frame.estimate, frame.stale)
            self.scale = self.gate.update(x.t_s, self.confidence, parts)
            self._cycles += 1
            self._closed_cycles += self.scale == 0.0
            ev = self.gate.event
            if ev is not None:
                self._record(t_ns, ev.kind, ev.part, ev.value, ev.describe())
        out = self.controller.step(x, self.scale)
        for sw in self.controller.new_events():
            self._record(t_ns, sw.kind, sw.strategy, float("nan"), sw.reason)
        self.last = out
        for i in range(len(frame.assistance_nm)):
            frame.assistance_nm[i] = 0.0
        frame.assistance_nm[self.joint_idx] = out.torque_nm

    def _record(self, t_ns: int, kind: str, part: str, value: float, detail: str) -> None:
        e = {"t_ns": int(t_ns), "kind": _EVENT_KINDS[kind], "part": part, "value": float(value), "detail": detail}
        self.events.append(e)
        self._pending.append(e)

    @staticmethod
    def _confidence(est: EstimateFrame | None, stale: bool) -> tuple[float, dict[str, float]]:
        """(confidence 0..1 or NaN, parts by name) for the gate."""
        if est is None:
            return 0.0, {"estimate": 0.0}
        names = getattr(est, "confidence_names", None)
        values = getattr(est, "confidence_parts", None)
        parts: dict[str, float] = {}
        if names is not None and values is not None:
            parts = {str(n): float(v) for n, v in zip(names, values)}
        c = getattr(est, "confidence", None)
        conf = float(c) if c is not None else 1.0       # an estimator without a confidence: validity alone
        if not est.valid:
            parts["estimate_valid"] = 0.0
            conf = 0.0
        if stale:
            parts["input_fresh"] = 0.0
            conf = 0.0
        return conf, parts

    def _input(self, est: EstimateFrame | None, stale: bool, t_ns: int | None = None) -> StageInput:
        """The controller's input now: no estimate yet gives NaN angle and moment; an invalid estimate or a stale
        input the knee angle (s, rad, N*m) with NaN moment and neither activations nor GRF."""
        from controllers.assistance import StageInput

        t_s = (self._now() if t_ns is None else t_ns) * 1e-9
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

    def telemetry_topics(self) -> list[TopicSpec]:
        """The assistance events (one per cycle while any are pending) and, with a gate, its per-cycle trace."""
        out = [TopicSpec(T_ASSISTANCE_EVENTS, "exo_runtime/msg/Fault", _assistance_event_msg,
                         lambda f: self._pending.popleft() if self._pending else None)]
        if self.gate is not None:
            out.append(TopicSpec(T_ASSISTANCE_GATE, "sensor_msgs/msg/JointState", _gate_msg,
                                 lambda f: (f.capture_ns, [self.confidence, self.scale])))
        return out

    def close(self) -> dict[str, Any]:
        """Counts for summary.json: fades (and by the part that fell), restorations, strategy switches with their
        reasons, the strategy running at the end, the gate's settings and the fraction of cycles it held the
        assistance at zero; the first 200 events."""
        fades = [e for e in self.events if e["kind"] == "CONFIDENCE_FADE"]
        by_part: dict[str, int] = {}
        for e in fades:
            by_part[e["part"]] = by_part.get(e["part"], 0) + 1
        gate = None
        if self.gate is not None:
            g = self.gate.params
            gate = {"fade_below": g.fade_below, "full_above": g.full_above, "hold_s": g.hold_s, "fade_s": g.fade_s,
                    "ramp_s": g.ramp_s, "cycles": self._cycles,
                    "closed_fraction": self._closed_cycles / self._cycles if self._cycles else None}
        return {"strategy": self.controller.strategy.name, "gate": gate,
                "fallback": self.controller.fallback.name if self.controller.fallback is not None else None,
                "running_at_end": self.controller.running.name, "gated": self.gate is not None,
                "confidence_fades": len(fades), "confidence_fades_by_part": by_part,
                "confidence_restored": sum(1 for e in self.events if e["kind"] == "CONFIDENCE_RESTORED"),
                "strategy_fallbacks": [e["detail"] for e in self.events if e["kind"] == "STRATEGY_FALLBACK"],
                "strategy_returns": sum(1 for e in self.events if e["kind"] == "STRATEGY_PRIMARY"),
                "events": self.events[:200]}


def _assistance_event_msg(e: dict[str, Any], offset_ns: int) -> Any:
    from runtime.telemetry import schema

    return schema.make("exo_runtime/msg/Fault", stamp=e["t_ns"] + offset_ns, source=ASSISTANCE_EVENT_SOURCE,
                       kind=e["kind"], value=e["value"], t_ns=e["t_ns"], latched=False,
                       detail=f"{e['part']}: {e['detail']}")


def _gate_msg(rec: tuple[int, list[float]], offset_ns: int) -> Any:
    from runtime.telemetry import schema

    return schema.make("sensor_msgs/msg/JointState",
                       header=schema.make("std_msgs/msg/Header", stamp=rec[0] + offset_ns, frame_id="assistance"),
                       name=["confidence", "gate_scale"], position=[], velocity=[], effort=rec[1])


def assistance_stage(device: DeviceConfig, subject: SubjectProfile, joint_names: list[str], side: str,
                     now_ns: Callable[[], int], estimator: KinematicsToLoads) -> ControllerAssistanceStage:
    """The configured assistance controller (``device.assistance``) and its confidence gate as a pipeline stage.
    The synergy strategy needs the muscle activations: an estimator without muscles is refused."""

    from runtime.wiring import assistance_controller, confidence_gate

    ctrl = assistance_controller(device, subject)
    muscles = tuple(getattr(estimator, "muscle_names", ()))
    if ctrl.strategy.name == "synergy" and not muscles:
        raise ValueError("assistance.strategy = 'synergy' needs the muscle activations, but the estimation chain runs "
                         "without muscles (EstimatorParams.muscles = False)")
    return ControllerAssistanceStage(ctrl, joint_names, device.assistance.joint, side, now_ns, muscles,
                                     gate=confidence_gate(device))


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
    c = stage.controller
    p = c.strategy.params
    fb = (f", {c.fallback.name} while the gait phase has not locked for {c.phase_lock_timeout_s:g} s"
          if c.fallback is not None else "")
    g = stage.gate.params if stage.gate is not None else None
    gate = (f", gated by confidence (fade below {g.fade_below:g} in {g.fade_s:g} s, full above {g.full_above:g} "
            f"held {g.hold_s:g} s)" if g is not None else "")
    return (f"assistance '{p.strategy}'{fb} (level {p.level:g}, ramp-in {p.ramp_in_s:g} s, limits "
            f"{p.torque_limit_nm:g} N*m and {p.slew_limit_nm_per_s:g} N*m/s, extension only "
            f"{'yes' if p.extension_only else 'no'}, gait phase from {c.gait.params.source}){gate}")
