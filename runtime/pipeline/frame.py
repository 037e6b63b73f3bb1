"""What flows through one estimation cycle, and what a pipeline stage and a telemetry topic are.

A stage is any object with a ``name`` and ``step(frame: PipelineFrame) -> None`` that reads and writes
fields of the shared per-cycle frame; ``TopicSpec`` describes one per-cycle telemetry topic a stage
declares. Kept apart from the stages themselves so that the estimation topics, the fault injector and
the stages can all import it without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # annotations only; runtime.estimation.chain imports nothing of runtime.pipeline
    import numpy as np

    from runtime.estimation.chain import EstimateFrame


@dataclass(slots=True)
class PipelineFrame:
    """What flows through one estimation cycle. Reused between cycles."""

    index: int = 0
    capture_ns: int = 0                    # monotonic capture time of the input
    gait_phase: float = 0.0                # [0, 1), heel strike = 0
    assistance_nm: list[float] = field(default_factory=list)   # per joint, flexion positive
    publish: bool = True                   # False: this cycle publishes no command (fault injection)
    t_s: float = 0.0                       # time of the input in its own timeline (s)
    markers_m: np.ndarray | None = None    # (M, 3) world z up, m, for the estimation chain; None: no new input
    restart: bool = False                  # the input restarted (new recording / wrap): reset filters
    estimate: EstimateFrame | None = None     # the latest estimate (held between inputs); None before the first
    new_estimate: bool = False             # the estimate was computed this cycle (else held)
    stale: bool = False                    # the input is older than its staleness limit: assistance must be zero
    knee_flexion_rad: float = float("nan")   # the assisted leg's estimated knee flexion (rad), for the torque loop
    vision_s: dict[str, float] = field(default_factory=dict)   # per-stage seconds of the vision front end for a new frame
    reprojection_px: float = float("nan")  # the monocular fit's mean reprojection error of the input (NaN: none)
    torso_m: np.ndarray | None = None      # (T, 3) world z up, m: the thorax markers for the trunk (None: none)


@dataclass(frozen=True)
class TopicSpec:
    """One per-cycle telemetry topic: ``snapshot(frame)`` copies what ``to_msg(snapshot, offset_ns)`` needs (the log
    converts later, on its own thread, adding the run's wall-clock offset to the stamp); ``snapshot`` returning None
    writes nothing this cycle."""

    topic: str
    msgtype: str
    to_msg: Callable[[Any, int], Any]
    snapshot: Callable[["PipelineFrame"], Any]


class Stage(Protocol):
    """One step of the estimation cycle: reads and writes fields of ``frame`` (optionally also ``substage_s``,
    ``telemetry_topics()`` and ``close()``, see :mod:`runtime.pipeline.stages`)."""

    name: str

    def step(self, frame: PipelineFrame) -> None: ...
