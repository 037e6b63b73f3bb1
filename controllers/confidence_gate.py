"""Assistance gated by the estimate's confidence: a smooth scale in [0, 1], a timed fade, a held ramp-up.

``ConfidenceGate.update(t_s, confidence, parts) -> scale`` once per estimation cycle; the caller multiplies the
strategy's request by ``scale`` before the command limiter (``controllers.assistance.AssistanceStrategy.step``'s
``gain``), so the torque and slew limits still apply to whatever the gate passes. Pure and deterministic: driven
by the frame time ``t_s`` (s) only, no wall clock.

States and scale (``c`` the confidence in [0, 1], ``lo = fade_below``, ``hi = full_above``)::

    ON:      scale follows smoothstep((c - lo) / (hi - lo)) (0 at lo, 1 at hi, zero slope at both ends),
             rising at most 1/ramp_s per s and falling at most 1/fade_s per s
    c < lo, or c not finite  -->  FADING (event "fade": the part that fell and its value)
    FADING:  scale = scale_at_fade_start * (1 - (t - t_fade) / fade_s): a linear ramp to exactly zero in fade_s,
             the same law as the safety supervisor's fade (controllers.safety, SafetyParams.fade_time_s)
    --> OFF at zero. From FADING or OFF: c >= hi held without a break for hold_s  -->  RAMPING
    RAMPING: scale rises at 1/ramp_s per s towards the smoothstep target (ramp_s 0: at once); reaching it
             --> ON (event "restored"). c < lo while RAMPING --> FADING again.

The gate starts OFF: assistance begins only after the confidence has held above ``hi`` for ``hold_s``. Non-finite
or non-increasing ``t_s`` advances nothing (the scale is held; a drop of confidence still starts the fade, which
then runs on the next valid time). ``parts`` (name -> value in [0, 1]) name the reason: the lowest part.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping
from models.param_ranges import check_ranges

GateState = Literal["OFF", "RAMPING", "ON", "FADING"]


@dataclass(frozen=True, slots=True)
class ConfidenceGateParams:
    """Thresholds (confidence, 0..1) and times (s) of the gate.

    ``fade_below``/``full_above``: the scale is 0 at and below ``fade_below`` (a fade starts below it) and 1 at and
    above ``full_above``; ``hold_s``: how long the confidence must stay at or above ``full_above`` before the
    assistance ramps back up; ``fade_s``: the fade to zero; ``ramp_s``: zero to full scale on the way back up.
    """

    fade_below: float = 0.4
    full_above: float = 0.7
    hold_s: float = 1.0
    fade_s: float = 0.1
    ramp_s: float = 2.0

    def __post_init__(self) -> None:
        ranges = {"fade_below": (0.0, 1.0), "full_above": (0.0, 1.0), "hold_s": (0.0, 30.0),
                  "fade_s": (1e-3, 5.0), "ramp_s": (0.0, 30.0)}
        check_ranges("ConfidenceGateParams", self, ranges)
        if not self.fade_below < self.full_above:
            raise ValueError(f"ConfidenceGateParams.fade_below = {self.fade_below} must be < full_above = "
                             f"{self.full_above}")


@dataclass(frozen=True, slots=True)
class GateEvent:
    """A fade started (``kind`` "fade") or a ramp-up completed ("restored") at ``t_s`` (s). ``part``: the lowest
    confidence part then (the one that fell, for a fade) and its ``value``; ``confidence``: the total."""

    t_s: float
    kind: Literal["fade", "restored"]
    part: str
    value: float
    confidence: float

    def describe(self) -> str:
        if self.kind == "fade":
            return f"confidence {self.confidence:.3g}: {self.part} fell to {self.value:.3g}"
        return f"confidence {self.confidence:.3g} held: assistance back to full scale (lowest part {self.part} " \
               f"{self.value:.3g})"


def smoothstep(x: float) -> float:
    """``3x^2 - 2x^3`` on [0, 1], clipped outside."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def lowest_part(confidence: float, parts: Mapping[str, float] | None) -> tuple[str, float]:
    """(name, value) of the lowest part; a non-finite part counts as the lowest; no parts: the total itself."""
    best: tuple[str, float] | None = None
    for name, v in (parts or {}).items():
        fv = float(v) if isinstance(v, (int, float)) else math.nan
        if not math.isfinite(fv):
            return str(name), fv
        if best is None or fv < best[1]:
            best = (str(name), fv)
    return best if best is not None else ("confidence", float(confidence))


class ConfidenceGate:
    """``update(t_s, confidence, parts) -> scale`` (0..1); ``event`` is this step's :class:`GateEvent` or None,
    ``events`` all of them. See the module docstring for the law."""

    def __init__(self, params: ConfidenceGateParams | None = None) -> None:
        self.params = params or ConfidenceGateParams()
        self.events: list[GateEvent] = []
        self.reset()

    def reset(self) -> None:
        """OFF at zero scale; the events are kept."""
        self.state: GateState = "OFF"
        self.scale = 0.0
        self.event: GateEvent | None = None
        self._t_prev: float | None = None
        self._t_fade = 0.0
        self._fade_from = 0.0
        self._above_since: float | None = None

    def target(self, confidence: float) -> float:
        """The scale the confidence asks for (smoothstep between the thresholds; 0 if not finite)."""
        p = self.params
        if not math.isfinite(confidence):
            return 0.0
        return smoothstep((confidence - p.fade_below) / (p.full_above - p.fade_below))

    def update(self, t_s: float, confidence: float, parts: Mapping[str, float] | None = None) -> float:
        p = self.params
        self.event = None
        c = float(confidence) if isinstance(confidence, (int, float)) else math.nan
        good_t = isinstance(t_s, (int, float)) and math.isfinite(t_s) and (self._t_prev is None or t_s > self._t_prev)
        dt = 0.0
        if good_t:
            dt = 0.0 if self._t_prev is None else t_s - self._t_prev
            self._t_prev = float(t_s)
        t = self._t_prev if self._t_prev is not None else math.nan
        low = not (math.isfinite(c) and c >= p.fade_below)
        # the hold timer: confidence at or above full_above without a break
        if math.isfinite(c) and c >= p.full_above:
            if self._above_since is None and math.isfinite(t):
                self._above_since = t
        else:
            self._above_since = None
        if low and self.state in ("ON", "RAMPING"):
            self.state = "FADING"
            self._fade_from = self.scale
            self._t_fade = t if math.isfinite(t) else 0.0
            self._emit("fade", t, c, parts)
        if self.state in ("FADING", "OFF") and self._above_since is not None and math.isfinite(t) \
                and t - self._above_since >= p.hold_s:
            self.state = "RAMPING"
        if self.state == "FADING":
            if math.isfinite(t):
                elapsed = t - self._t_fade
                self.scale = 0.0 if elapsed >= p.fade_s else max(0.0, self._fade_from * (1.0 - elapsed / p.fade_s))
            if self.scale == 0.0:
                self.state = "OFF"
        elif self.state == "RAMPING":
            goal = self.target(c)
            self.scale = self._towards(goal, dt)
            if self.scale == goal:
                self.state = "ON"
                self._emit("restored", t, c, parts)
        elif self.state == "ON":
            self.scale = self._towards(self.target(c), dt)
        return self.scale

    def _towards(self, goal: float, dt: float) -> float:
        """The scale moved towards ``goal``: up at most ``dt / ramp_s`` (at once when ``ramp_s`` is 0), down at most
        ``dt / fade_s``."""
        p = self.params
        if goal >= self.scale:
            return goal if p.ramp_s == 0.0 else min(goal, self.scale + dt / p.ramp_s)
        return max(goal, self.scale - dt / p.fade_s)

    def _emit(self, kind: Literal["fade", "restored"], t: float, c: float, parts: Mapping[str, float] | None) -> None:
        name, value = lowest_part(c, parts)
        self.event = GateEvent(t, kind, name, value, c)
        self.events.append(self.event)

    def counts(self) -> dict[str, Any]:
        """Fades and restorations so far, and the fades by the part that fell."""
        by_part: dict[str, int] = {}
        for e in self.events:
            if e.kind == "fade":
                by_part[e.part] = by_part.get(e.part, 0) + 1
        return {"fades": sum(1 for e in self.events if e.kind == "fade"),
                "restored": sum(1 for e in self.events if e.kind == "restored"), "fades_by_part": by_part}
