"""Causal gait-phase estimation: heel strikes, an adaptive stride period, phase 0..1 and stance/swing.

Two event sources, chosen in :class:`GaitPhaseParams` (``source``):

* ``"kinematics"``: the knee flexion angle (rad, 0 = straight, flexion positive). In walking the knee
  flexes to 50-65 deg in swing and extends to near straight in terminal swing, just before initial
  contact (Perry & Burnfield, *Gait Analysis*, 2nd ed., ch. 7). A heel strike is declared at the first
  flexion minimum (filtered velocity crossing from < 0 to >= 0) after the flexion exceeded
  ``swing_flexion_rad``: the mid-stance minimum is not preceded by a swing peak and is ignored.
  Stance is ``phase < stance_fraction`` (toe-off is not observable from the knee alone).
* ``"grf"``: a vertical ground-reaction force of the same leg (N). Heel strike when it rises through
  ``grf_on_n``, toe-off when it falls through ``grf_off_n`` (hysteresis); stance is measured.

Stride period: the time between accepted heel strikes, smoothed by an exponential average
(``period_alpha``); an interval outside ``[min_period_s, max_period_s]`` or differing from the current
estimate by more than ``max_period_change`` (fraction) is not used for the period (the heel strike
still resets the phase). Phase = (t - t_last_heel_strike) / period, clipped below 1.

Validity: phase is ``nan`` and ``valid`` False until two heel strikes have given a period, after more
than ``timeout_factor`` periods without a heel strike (standing still, lost track), and for any
non-finite or non-increasing input; the state (``GaitState``) says which. Everything is causal: the
output at time t uses samples up to t only. Units: s, rad, rad/s, N.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Literal
from models.param_ranges import check_ranges


class GaitState(str, Enum):
    """Why the phase is or is not usable."""

    UNKNOWN = "UNKNOWN"          # fewer than two heel strikes seen: no period yet
    TRACKING = "TRACKING"        # phase valid
    LOST = "LOST"                # no heel strike for timeout_factor periods: stopped walking or lost track
    BAD_INPUT = "BAD_INPUT"      # this sample was non-finite or went back in time


@dataclass(frozen=True, slots=True)
class GaitPhaseParams:
    """Tuning of :class:`GaitPhaseEstimator` (SI units)."""

    source: Literal["kinematics", "grf"] = "kinematics"
    swing_flexion_rad: float = 0.6        # 34 deg: arms the heel-strike detector (swing peak is 50-65 deg)
    velocity_cutoff_hz: float = 8.0       # first-order low-pass on the knee velocity
    grf_on_n: float = 50.0                # rising through this: heel strike
    grf_off_n: float = 20.0               # falling through this: toe-off
    stance_fraction: float = 0.6          # kinematics source: stance is phase < this
    min_period_s: float = 0.6
    max_period_s: float = 2.5
    max_period_change: float = 0.35       # a new interval within +-35 % of the estimate updates it
    period_alpha: float = 0.5             # weight of the newest accepted interval
    timeout_factor: float = 1.6           # LOST after this many periods without a heel strike
    refractory_fraction: float = 0.4      # no heel strike within this fraction of a period of the last one

    def __post_init__(self) -> None:
        if self.source not in ("kinematics", "grf"):
            raise ValueError(f"GaitPhaseParams.source = {self.source!r}: allowed 'kinematics', 'grf'")
        checks = {
            "swing_flexion_rad": (0.1, 2.0), "velocity_cutoff_hz": (0.5, 50.0), "grf_on_n": (1.0, 5000.0),
            "grf_off_n": (0.0, 5000.0), "stance_fraction": (0.3, 0.8), "min_period_s": (0.2, 5.0),
            "max_period_s": (0.3, 10.0), "max_period_change": (0.05, 1.0), "period_alpha": (0.01, 1.0),
            "timeout_factor": (1.05, 5.0), "refractory_fraction": (0.0, 0.9),
        }
        check_ranges("GaitPhaseParams", self, checks)
        if not self.min_period_s < self.max_period_s:
            raise ValueError(f"GaitPhaseParams.min_period_s = {self.min_period_s} must be < "
                             f"max_period_s = {self.max_period_s}")
        if not self.grf_off_n < self.grf_on_n:
            raise ValueError(f"GaitPhaseParams.grf_off_n = {self.grf_off_n} must be < grf_on_n = {self.grf_on_n}")


@dataclass(frozen=True, slots=True)
class GaitPhase:
    """One estimate. ``phase`` in [0, 1) from the last heel strike, ``nan`` unless ``valid``."""

    t_s: float
    phase: float
    valid: bool
    state: GaitState
    stance: bool | None           # None when unknown
    stride_period_s: float        # nan until estimated
    heel_strike: bool             # a heel strike was declared at this sample
    strides: int                  # heel strikes seen


class GaitPhaseEstimator:
    """Stage object: ``update(t_s, knee_flexion_rad, vertical_grf_n=None) -> GaitPhase``. No globals."""

    def __init__(self, params: GaitPhaseParams | None = None) -> None:
        self.params = params or GaitPhaseParams()
        self.reset()

    def reset(self) -> None:
        """Forget everything (UNKNOWN)."""
        self._t_prev: float | None = None
        self._q_prev = math.nan
        self._v_filt = 0.0
        self._v_prev = 0.0
        self._armed = False
        self._in_stance = False
        self._t_hs: float | None = None
        self._period = math.nan
        self._strides = 0

    @property
    def stride_period_s(self) -> float:
        return self._period

    def update(self, t_s: float, knee_flexion_rad: float, vertical_grf_n: float | None = None) -> GaitPhase:
        """Advance with one sample (time s, knee flexion rad, optional vertical GRF N)."""
        p = self.params
        if not (isinstance(t_s, (int, float)) and math.isfinite(t_s)) or (
                self._t_prev is not None and t_s <= self._t_prev):
            return self._out(float(t_s) if isinstance(t_s, (int, float)) else math.nan, GaitState.BAD_INPUT,
                             False)
        use_grf = p.source == "grf"
        sample = vertical_grf_n if use_grf else knee_flexion_rad
        if sample is None or not isinstance(sample, (int, float)) or not math.isfinite(sample):
            # a bad sample does not advance the detector; time still runs for the timeout
            state = self._state_at(t_s)
            return self._out(t_s, GaitState.BAD_INPUT if state is not GaitState.LOST else state, False)
        hs = self._detect_grf(t_s, float(sample)) if use_grf else self._detect_kinematic(t_s, float(sample))
        self._t_prev = t_s
        if hs:
            self._heel_strike(t_s)
        return self._out(t_s, self._state_at(t_s), hs)

    # ------------------------------------------------------------------ detectors
    def _refractory(self, t_s: float) -> bool:
        if self._t_hs is None:
            return False
        ref = self._period if math.isfinite(self._period) else self.params.min_period_s
        return t_s - self._t_hs < self.params.refractory_fraction * ref

    def _detect_kinematic(self, t_s: float, q: float) -> bool:
        p = self.params
        hs = False
        if self._t_prev is not None and math.isfinite(self._q_prev):
            dt = t_s - self._t_prev
            v_raw = (q - self._q_prev) / dt
            a = 1.0 - math.exp(-2.0 * math.pi * p.velocity_cutoff_hz * dt)
            self._v_prev = self._v_filt
            self._v_filt += a * (v_raw - self._v_filt)
            if q > p.swing_flexion_rad:
                self._armed = True
            if self._armed and self._v_prev < 0.0 <= self._v_filt and q < p.swing_flexion_rad:
                self._armed = False
                hs = not self._refractory(t_s)
        self._q_prev = q
        return hs

    def _detect_grf(self, t_s: float, f: float) -> bool:
        p = self.params
        if not self._in_stance and f >= p.grf_on_n:
            self._in_stance = True
            return not self._refractory(t_s)
        if self._in_stance and f <= p.grf_off_n:
            self._in_stance = False
        return False

    def _heel_strike(self, t_s: float) -> None:
        p = self.params
        if self._t_hs is not None:
            interval = t_s - self._t_hs
            if p.min_period_s <= interval <= p.max_period_s:
                if not math.isfinite(self._period) or self._state_at(t_s) is GaitState.LOST:
                    self._period = interval
                elif abs(interval - self._period) <= p.max_period_change * self._period:
                    self._period += p.period_alpha * (interval - self._period)
        self._t_hs = t_s
        self._strides += 1

    # ------------------------------------------------------------------ output
    def _state_at(self, t_s: float) -> GaitState:
        if self._t_hs is None or not math.isfinite(self._period):
            return GaitState.UNKNOWN
        if t_s - self._t_hs > self.params.timeout_factor * self._period:
            return GaitState.LOST
        return GaitState.TRACKING

    def _out(self, t_s: float, state: GaitState, hs: bool) -> GaitPhase:
        if state is not GaitState.TRACKING or self._t_hs is None:
            stance = self._in_stance if (self.params.source == "grf" and state is not GaitState.BAD_INPUT
                                         and self._t_prev is not None) else None
            return GaitPhase(t_s, math.nan, False, state, stance, self._period, hs, self._strides)
        phase = min((t_s - self._t_hs) / self._period, math.nextafter(1.0, 0.0))
        stance = self._in_stance if self.params.source == "grf" else phase < self.params.stance_fraction
        return GaitPhase(t_s, phase, True, state, stance, self._period, hs, self._strides)
