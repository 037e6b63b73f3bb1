"""Parameters of the ground reaction estimate (:class:`GroundReactionParams`), validated at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTACT_SOLVERS", "FREE_MOMENTS", "HORIZONTAL_SPLITS", "TRANSITIONS", "GroundReactionParams"]

#: Shapes of the trailing foot's share over double support.
TRANSITIONS = ("cosine", "linear")
#: Free-moment rules.
FREE_MOMENTS = ("balance", "zero")
#: Rules for the horizontal force split between the feet.
HORIZONTAL_SPLITS = ("pivot", "proportional")
#: How the per-foot forces are found: the feasible contact fit (:mod:`models.grf.feasible`) or the rule-based split.
CONTACT_SOLVERS = ("feasible", "share")


def _positive(owner: str, name: str, v: Any, *, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {v!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {v!r}")


@dataclass(frozen=True, slots=True)
class GroundReactionParams:
    """Parameters of :class:`GroundReactionEstimator`, validated at construction (``ValueError`` names the field).

    ``subject_mass_kg``: the subject's mass; the model's masses are scaled to it.  ``cutoff_hz``: low-pass cut-off
    for body positions/orientations (overall -3 dB for the zero-lag filter, design cut-off for the causal one);
    ``None`` = no filtering (plain differences).  ``contact_cutoff_hz``: same for the foot points used by contact
    detection in the zero-lag path (the causal path filters them with ``cutoff_hz``, to share the force's lag).
    ``filter_order``: Butterworth order per pass.  ``causal``: :meth:`~GroundReactionEstimator.run` uses
    the causal filters and the real-time phase logic (what :meth:`~GroundReactionEstimator.step` does).
    ``sample_rate_hz``: nominal frame rate, needed by :meth:`~GroundReactionEstimator.step`; ``run`` uses it when
    given (it must agree with the trial's time stamps within 1 %), else the mean rate of the time stamps.
    ``floor_height_m``: z of the floor; ``None`` = estimate from each trial in ``run`` (``step`` needs it given, or
    set by :meth:`~GroundReactionEstimator.reset`).  ``contact_*``: the likelihood of a point being in contact (module
    doc).  ``min_contact_s``: shortest contact kept offline.  ``contact_onset_level``,
    ``contact_offset_level``: offline (zero-lag path), each contact found by the hysteresis starts where the foot
    likelihood last rose above the first and ends after its last frame above the second
    (:func:`models.grf.contact.refine_contact_edges`; ``None`` = where the hysteresis put the edge, as in real time),
    by at most ``contact_edge_max_s`` (the shared lab trials need at most 0.025 s).  ``double_support_s``: double-support duration assumed
    where none is observed.  ``transition``: ``"cosine"`` or ``"linear"``.  ``free_moment``: ``"balance"`` or
    ``"zero"``.  ``horizontal_split``: ``"pivot"`` or ``"proportional"``; ``pivot_height_m``: height of the pivot
    above the COM.  ``max_gap_s``: NaN gaps up to this long are filled by a cubic spline, longer ones are excluded.
    ``use_lumbar``: rotate the upper body by the input's lumbar angles when it has them.
    ``contact_solver``: ``"feasible"`` (default): the per-frame constrained fit of :mod:`models.grf.feasible`
    (Fz >= 0, friction pyramid of ``friction_mu`` with ``friction_edges`` edges, CoP inside the support polygon,
    zero force in swing), with the rule-based split as a soft prior of weight ``feasible_prior_weight``, the rule
    CoP as a soft prior of weight ``feasible_cop_weight``, the moment balance about the COM weighted by
    1 / ``feasible_moment_length_m`` and a ridge ``feasible_ridge``; ``"share"``: the rule-based split alone (the
    estimate before the fit, kept for comparison).  ``feasible_fallback_reach_m``: in a frame where neither foot is
    detected in contact (a missed detection, e.g. a floor height off by a few cm), the feet whose lowest sole point
    is within this height of the floor may carry force (the rule split's likelihood share as the prior); feet higher
    up carry none.
    ``floor_adapt_max_m``: the real-time path (:meth:`~GroundReactionEstimator.step`) refines the floor it was
    given from the still feet, by the rule of :func:`models.grf.floor.estimate_floor_height`: the running median of
    each still foot's lowest (filtered) sole point, every point slower than ``floor_still_speed_m_s``, taken once
    ``floor_adapt_min_samples`` such samples are in (default 10: a sixth of a second of one still foot at
    60 Hz; the last 512 are kept), and accepted only within
    ``floor_adapt_max_m`` of the given floor; 0 (default) keeps the given floor. The live chain uses it because the
    model's sole points sit 2-3 cm above a lab's force-plate surface (shoe sole, soft tissue, marker placement):
    on PS ss1 the still-foot floor of the model is 0.023 m, so a floor of 0 leaves every foot "in the air".
    """

    subject_mass_kg: float
    cutoff_hz: float | None = 6.0
    contact_cutoff_hz: float | None = 12.0
    filter_order: int = 2
    causal: bool = False
    sample_rate_hz: float | None = None
    floor_height_m: float | None = None
    contact_height_m: float = 0.02
    contact_height_scale_m: float = 0.005
    contact_speed_m_s: float = 0.8
    contact_speed_scale_m_s: float = 0.15
    contact_on: float = 0.6
    contact_off: float = 0.4
    contact_onset_level: float | None = 0.3
    contact_offset_level: float | None = 0.5
    contact_edge_max_s: float = 0.05
    min_contact_s: float = 0.04
    double_support_s: float = 0.12
    double_support_range_s: tuple[float, float] = (0.03, 0.4)
    transition: str = "linear"
    free_moment: str = "zero"
    horizontal_split: str = "pivot"
    pivot_height_m: float = 0.2
    max_gap_s: float = 0.1
    use_lumbar: bool = True
    contact_solver: str = "feasible"
    friction_mu: float = 0.7
    friction_edges: int = 4
    feasible_moment_length_m: float = 1.0
    feasible_prior_weight: float = 0.3
    feasible_cop_weight: float = 0.3
    feasible_ridge: float = 1e-6
    feasible_fallback_reach_m: float = 0.15
    floor_adapt_max_m: float = 0.0
    floor_still_speed_m_s: float = 0.4
    floor_adapt_min_samples: int = 10

    def __post_init__(self) -> None:
        o = "GroundReactionParams"
        _positive(o, "subject_mass_kg", self.subject_mass_kg)
        _positive(o, "cutoff_hz", self.cutoff_hz, allow_none=True)
        _positive(o, "contact_cutoff_hz", self.contact_cutoff_hz, allow_none=True)
        _positive(o, "sample_rate_hz", self.sample_rate_hz, allow_none=True)
        for name in ("contact_height_scale_m", "contact_speed_m_s", "contact_speed_scale_m_s", "double_support_s",
                     "max_gap_s", "contact_edge_max_s"):
            _positive(o, name, getattr(self, name))
        for name in ("floor_still_speed_m_s",):
            _positive(o, name, getattr(self, name))
        if not (isinstance(self.floor_adapt_max_m, (int, float)) and 0.0 <= self.floor_adapt_max_m <= 0.2):
            raise ValueError(f"{o}.floor_adapt_max_m must be a number in 0..0.2 m, got {self.floor_adapt_max_m!r}")
        if not (isinstance(self.floor_adapt_min_samples, int) and 1 <= self.floor_adapt_min_samples <= 512):
            raise ValueError(f"{o}.floor_adapt_min_samples must be an integer in 1..512, got "
                             f"{self.floor_adapt_min_samples!r}")
        for name in ("contact_height_m", "min_contact_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{o}.{name} must be a finite number >= 0, got {v!r}")
        if self.floor_height_m is not None and not math.isfinite(float(self.floor_height_m)):
            raise ValueError(f"{o}.floor_height_m must be finite or None, got {self.floor_height_m!r}")
        if int(self.filter_order) != self.filter_order or not 1 <= self.filter_order <= 8:
            raise ValueError(f"{o}.filter_order must be an integer in 1..8, got {self.filter_order!r}")
        if not 0.0 < self.contact_off <= self.contact_on < 1.0:
            raise ValueError(f"{o}: need 0 < contact_off <= contact_on < 1, got contact_off={self.contact_off!r}, "
                             f"contact_on={self.contact_on!r}")
        if self.contact_onset_level is not None and not (
                isinstance(self.contact_onset_level, (int, float)) and 0.0 < self.contact_onset_level <= self.contact_on):
            raise ValueError(f"{o}.contact_onset_level must be None or in (0, contact_on = {self.contact_on!r}], got "
                             f"{self.contact_onset_level!r}")
        if self.contact_offset_level is not None and not (
                isinstance(self.contact_offset_level, (int, float)) and self.contact_off <= self.contact_offset_level < 1.0):
            raise ValueError(f"{o}.contact_offset_level must be None or in [contact_off = {self.contact_off!r}, 1), got "
                             f"{self.contact_offset_level!r}")
        lo, hi = self.double_support_range_s
        if not 0 < lo < hi:
            raise ValueError(f"{o}.double_support_range_s must be (lo, hi) with 0 < lo < hi, got {(lo, hi)!r}")
        if self.transition not in TRANSITIONS:
            raise ValueError(f"{o}.transition must be one of {TRANSITIONS}, got {self.transition!r}")
        if self.free_moment not in FREE_MOMENTS:
            raise ValueError(f"{o}.free_moment must be one of {FREE_MOMENTS}, got {self.free_moment!r}")
        if self.horizontal_split not in HORIZONTAL_SPLITS:
            raise ValueError(f"{o}.horizontal_split must be one of {HORIZONTAL_SPLITS}, got {self.horizontal_split!r}")
        if not (isinstance(self.pivot_height_m, (int, float)) and math.isfinite(self.pivot_height_m)
                and 0.0 <= self.pivot_height_m <= 2.0):
            raise ValueError(f"{o}.pivot_height_m must be in [0, 2] m, got {self.pivot_height_m!r}")
        if self.contact_solver not in CONTACT_SOLVERS:
            raise ValueError(f"{o}.contact_solver must be one of {CONTACT_SOLVERS}, got {self.contact_solver!r}")
        if not (isinstance(self.friction_mu, (int, float)) and math.isfinite(self.friction_mu)
                and 0.0 < self.friction_mu <= 2.0):
            raise ValueError(f"{o}.friction_mu must be in (0, 2], got {self.friction_mu!r}")
        if int(self.friction_edges) != self.friction_edges or not 3 <= self.friction_edges <= 16:
            raise ValueError(f"{o}.friction_edges must be an integer in 3..16, got {self.friction_edges!r}")
        for name in ("feasible_moment_length_m", "feasible_ridge"):
            _positive(o, name, getattr(self, name))
        for name in ("feasible_prior_weight", "feasible_cop_weight", "feasible_fallback_reach_m"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{o}.{name} must be a finite number >= 0, got {v!r}")
