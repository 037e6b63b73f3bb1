"""Per-frame confidence in an estimate, in [0, 1], from named parts; physiological envelopes of walking.

Every part is itself in [0, 1]: 1 inside its envelope (or bound), falling smoothly (cubic smoothstep, C1,
monotone) to 0 at ``margin`` beyond it. The confidence is the **minimum** of the parts (the weakest evidence
decides; the lowest part names the reason), so it is continuous and the gate that consumes it can fade smoothly.

============================  ========================================================================  =========
part                          quantity judged                                                           missing
============================  ========================================================================  =========
``visibility``                markers / landmarks the chain uses that are present (x their score)       0
``freshness``                 seconds since the input last changed (a frozen camera or replay)           --
``reprojection``              monocular fit's reprojection error (px)                                    1 (none)
``dynamics``                  residual of the contact-force fit: |F| / BW and |M| / (BW ht)              0
``envelope_vgrf``             vertical GRF of each foot (BW)                                             0
``envelope_kam``              external knee adduction moment (%BW ht)                                    0
``envelope_kem``              internal knee extension moment (%BW ht)                                    0
``envelope_kcf``              total knee contact force (BW); medial, lateral compartment (BW)           0 / 1
``envelope_activation_rate``  activation change beyond first-order activation dynamics in one frame      0 / 1
============================  ========================================================================  =========

"missing": the part when the input has no such quantity (NaN): an estimate that failed scores 0; a quantity
the chain does not estimate at all (no monocular fit for lab markers; muscles switched off) scores 1.

Units: forces in body weights (BW = m g), moments in %BW*ht, activations 0..1, time s. Pure computation: no
project imports, no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

STANDARD_GRAVITY_M_S2 = 9.80665

PART_NAMES: tuple[str, ...] = ("visibility", "freshness", "reprojection", "dynamics", "envelope_vgrf",
                               "envelope_kam", "envelope_kem", "envelope_kcf", "envelope_activation_rate")
(I_VISIBILITY, I_FRESHNESS, I_REPROJECTION, I_DYNAMICS, I_VGRF, I_KAM, I_KEM, I_KCF,
 I_ACTIVATION_RATE) = range(len(PART_NAMES))
#: Confidence below this counts as "low" in the per-trial summary (the gate's default threshold may differ).
LOW_CONFIDENCE = 0.5


# ---------------------------------------------------------------------------------------------- soft bounds

def smoothstep(u: float) -> float:
    """3u^2 - 2u^3 on [0, 1], 0 below, 1 above (C1, monotone)."""
    if not u > 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    return u * u * (3.0 - 2.0 * u)


def soft_inside(x: float, lower: float, upper: float, margin: float) -> float:
    """1 for ``lower <= x <= upper``, falling smoothly to 0 at ``margin`` outside either bound; NaN gives 0."""
    if x != x:
        return 0.0
    if x > upper:
        return 1.0 - smoothstep((x - upper) / margin)
    if x < lower:
        return 1.0 - smoothstep((lower - x) / margin)
    return 1.0


def soft_inside_array(x: np.ndarray, lower: float, upper: float, margin: float) -> np.ndarray:
    """:func:`soft_inside` element-wise (offline, arrays)."""
    x = np.asarray(x, dtype=float)
    d = np.maximum(np.maximum(x - upper, lower - x), 0.0) / margin
    u = np.clip(d, 0.0, 1.0)
    out = 1.0 - u * u * (3.0 - 2.0 * u)
    out[~np.isfinite(x)] = 0.0
    return out


@dataclass(frozen=True)
class Envelope:
    """A physiological range ``[lower, upper]`` of one quantity in ``unit``, ``margin`` (same unit) of soft fall-off
    beyond it, and where the numbers come from."""

    name: str
    quantity: str
    unit: str
    lower: float
    upper: float
    margin: float
    source: str

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"envelope {self.name}: lower = {self.lower!r} must be below upper = {self.upper!r}")
        if not self.margin > 0.0:
            raise ValueError(f"envelope {self.name}: margin = {self.margin!r} must be > 0")

    def part(self, x: float) -> float:
        """1 inside, smoothly 0 at ``margin`` outside; NaN gives 0."""
        return soft_inside(x, self.lower, self.upper, self.margin)

    def outside(self, x: np.ndarray) -> np.ndarray:
        """True where ``x`` is finite and outside ``[lower, upper]`` (the frames a report flags)."""
        x = np.asarray(x, dtype=float)
        with np.errstate(invalid="ignore"):
            return np.isfinite(x) & ((x < self.lower) | (x > self.upper))


# ---------------------------------------------------------------------------------------------- the envelopes
# Walking at self-selected to fast speed, adults (healthy and knee replacement / osteoarthritis).

#: Vertical GRF of one foot. Winter, Biomechanics and Motor Control of Human Movement, 4th ed. (2009), ch. 5:
#: the two stance peaks are 1.0-1.3 BW at natural cadence and reach about 1.5 BW at fast cadence; a foot cannot
#: pull the floor (Fz >= 0). 1.6 BW is the walking ceiling; 2.0 BW and above is running, not walking.
VGRF_ENVELOPE = Envelope("vgrf", "vertical ground reaction force of each foot", "BW", 0.0, 1.6, 0.4,
                         "Winter 2009 (normative gait, vGRF peaks 1.0-1.5 BW); Fz >= 0")
#: A foot pulling the floor by more than 0.1 BW (frame noise of a plate is ~0.01 BW) scores 0.
VGRF_NEGATIVE_MARGIN_BW = 0.1
#: External knee adduction moment. Hurwitz et al. 2002 (J Orthop Res 20:101) and Kean et al. 2012 (Clin Biomech
#: 27:520): peak KAM 2.0-3.5 %BW*ht in healthy and medial-osteoarthritis walking (group SD ~1); a small abduction
#: moment (to about -1 %BW*ht) in early stance and swing.
KAM_ENVELOPE = Envelope("kam", "external knee adduction moment", "%BW*ht", -1.5, 5.0, 2.0,
                        "Hurwitz 2002 J Orthop Res 20:101; Kean 2012 Clin Biomech 27:520 (peaks 2-3.5 %BW*ht)")
#: Internal knee extension moment. Winter 2009 normative gait: extensor peak 0.5-1.0 N*m/kg in loading response,
#: flexor up to about -0.5 N*m/kg in terminal stance; 1 N*m/kg = 100 / (9.81 ht) %BW*ht = 5.8 %BW*ht at 1.75 m.
KEM_ENVELOPE = Envelope("kem", "internal knee extension moment", "%BW*ht", -4.0, 6.0, 2.0,
                        "Winter 2009 (knee moment +1.0 / -0.5 N*m/kg at natural to fast cadence)")
#: Total tibiofemoral contact force. Fregly et al. 2012 (J Orthop Res 30:503), Grand Challenge in-vivo data in
#: ../shared/data/GC5_PS/in_vivo/PS_ngait_og_ss{1,3,8}_eTibia_101pt.csv: measured peaks 1609, 1817, 1714 N =
#: 2.19, 2.47, 2.33 BW (75 kg); Kutzner et al. 2010 (J Biomech 43:2164, 5 instrumented knees): walking peaks
#: 2.2-3.0 BW (mean 2.6). Compressive only (a compartment cannot pull).
KCF_ENVELOPE = Envelope("kcf", "total knee contact force", "BW", 0.0, 4.0, 1.0,
                        "Fregly 2012 J Orthop Res 30:503 (GC5 PS in vivo 2.19-2.47 BW); Kutzner 2010 J Biomech "
                        "43:2164 (2.2-3.0 BW)")
#: Medial and lateral compartment forces (the implant's split, Fregly 2012): the same GC5 PS in-vivo files range
#: -0.28 .. 1.76 BW per compartment (a compartment "pulls" up to -0.28 BW in swing: the load cell's split of the
#: adduction moment, Winby et al. 2009 J Biomech 42:2294 treat it as lift-off). Envelope -0.3 .. 3.0 BW.
KCF_COMPARTMENT_ENVELOPE = Envelope("kcf_compartment", "medial / lateral knee contact force", "BW", -0.3,
                                    3.0, 0.5, "Fregly 2012 J Orthop Res 30:503 (GC5 PS in vivo -0.28 .. 1.76 BW "
                                    "per compartment)")
#: Activation dynamics: tau_act 10-15 ms, tau_deact 40-60 ms (Winters 1995, Ann Biomed Eng 23:359; Thelen 2003,
#: J Biomech Eng 125:70). The most permissive ends bound how fast an activation can rise / fall: with full
#: excitation a(t+dt) <= 1 - (1 - a) exp(-dt / tau_act), with none a(t+dt) >= a exp(-dt / tau_deact).
TAU_ACTIVATION_S = 0.010
TAU_DEACTIVATION_S = 0.040
#: Activation change beyond those bounds in one frame (activation units): up to 0.05 is tolerated (the bound is exact
#: only for a step of excitation held over the frame, and static optimisation solves each frame to ~1e-3; on PS ss1
#: at 120 Hz, exo analyze --muscles, 96 % of frames have some muscle above 0 and the largest excess is 0.35); 0.5 (half
#: the range in one frame, e.g. static optimisation switching a muscle off) scores 0.
ACTIVATION_RATE_ENVELOPE = Envelope("activation_rate", "activation change beyond activation dynamics", "activation",
                                    -1.0, 0.05, 0.45,
                                    "Winters 1995 Ann Biomed Eng 23:359; Thelen 2003 J Biomech Eng 125:70 "
                                    "(tau_act 10-15 ms, tau_deact 40-60 ms)")
#: Dynamic residual of the contact-force fit (what the feet cannot supply of m (a_com - g) and dL/dt). Force: Hicks
#: et al. 2015 (J Biomech Eng 137:020905), "Is my model good enough?": residual forces up to 5-10 % of the peak
#: external force (~1.2 BW in walking -> 0.06-0.12 BW) are acceptable. Moment: Hicks's 1-2 % of COM height x peak
#: force (0.7-1.3 %BW*ht) assumes measured plates after RRA; a kinematics-only dL/dt is noisier. Measured
#: 2026-12-07 with the zero-lag feasible fit (models.grf, offline) on the shared plate trials PS_ss1 / DM_og1:
#: residual moment median 3.2 / 2.8, 90th percentile 5.6 / 6.4, max 8.5 / 9.8 %BW*ht; bound 6 (the 90th
#: percentile of good lab data), 16 %BW*ht scores 0.
RESIDUAL_FORCE_ENVELOPE = Envelope("residual_force", "residual force of the contact fit", "BW", 0.0, 0.12, 0.38,
                                   "Hicks 2015 J Biomech Eng 137:020905 (<= 10 % of peak external force)")
RESIDUAL_MOMENT_ENVELOPE = Envelope("residual_moment", "residual moment of the contact fit about the COM", "%BW*ht",
                                    0.0, 6.0, 10.0, "shared plate trials, feasible fit (90th percentile 5.6-6.4 "
                                    "%BW*ht); Hicks 2015: 1.3 with measured plates")
#: Fraction of the chain's markers present (relative to the most seen since reset) x their mean score: 0.9 and
#: above is full confidence; at 0.5 the IK is fitting half the set and scores 0 (design choice of this project).
VISIBILITY_FULL = 0.9
VISIBILITY_ZERO = 0.5
#: Input unchanged (bit-identical markers) for longer than one frame of a 10 Hz source (the slowest camera accepted)
#: starts the fall; frozen 0.3 s scores 0.
FRESHNESS_HOLD_S = 0.1
FRESHNESS_MARGIN_S = 0.2
#: Reprojection error of the monocular fit: 2D keypoint detectors are accurate to ~5 px on 720p-1080p video
#: (RTMPose / BlazePose on COCO-scale people); 20 px (a landmark off by a joint's width) scores 0.
REPROJECTION_BOUND_PX = 5.0
REPROJECTION_MARGIN_PX = 15.0

#: The envelopes of the estimates, by report name (what `analyze`, `demo`, `batch` and the report flag).
ENVELOPES: dict[str, Envelope] = {e.name: e for e in (VGRF_ENVELOPE, KAM_ENVELOPE, KEM_ENVELOPE, KCF_ENVELOPE,
                                                      KCF_COMPARTMENT_ENVELOPE, ACTIVATION_RATE_ENVELOPE)}


# ---------------------------------------------------------------------------------------------- parts, scalars

def visibility_part(fraction_present: float) -> float:
    """``fraction_present`` (0..1, markers present x score) -> 1 at >= VISIBILITY_FULL, 0 at <= VISIBILITY_ZERO."""
    if fraction_present != fraction_present:
        return 0.0
    return smoothstep((fraction_present - VISIBILITY_ZERO) / (VISIBILITY_FULL - VISIBILITY_ZERO))


def freshness_part(seconds_unchanged: float) -> float:
    """Seconds the input has not changed -> 1 up to FRESHNESS_HOLD_S, 0 at FRESHNESS_HOLD_S + FRESHNESS_MARGIN_S."""
    return soft_inside(seconds_unchanged, -math.inf, FRESHNESS_HOLD_S, FRESHNESS_MARGIN_S)


def reprojection_part(error_px: float) -> float:
    """Reprojection error (px) -> 1 up to REPROJECTION_BOUND_PX, 0 at + REPROJECTION_MARGIN_PX; NaN (no monocular fit,
    e.g. lab markers) gives 1."""
    if error_px != error_px:
        return 1.0
    return soft_inside(error_px, -math.inf, REPROJECTION_BOUND_PX, REPROJECTION_MARGIN_PX)


def dynamics_part(residual_force_bw: float, residual_moment_pct_bw_ht: float) -> float:
    """Residual force (BW) and moment (%BW*ht) magnitudes -> the smaller of their envelope parts; NaN gives 0."""
    return min(RESIDUAL_FORCE_ENVELOPE.part(residual_force_bw), RESIDUAL_MOMENT_ENVELOPE.part(residual_moment_pct_bw_ht))


def vgrf_part(fz_bw: float) -> float:
    """Vertical GRF of one foot (BW): 1 in [0, 1.6], 0 at -0.1 BW or 2.0 BW."""
    if fz_bw < VGRF_ENVELOPE.lower:
        return soft_inside(fz_bw, VGRF_ENVELOPE.lower, VGRF_ENVELOPE.upper, VGRF_NEGATIVE_MARGIN_BW)
    return VGRF_ENVELOPE.part(fz_bw)


def kcf_part(medial_bw: float, lateral_bw: float, total_bw: float) -> float:
    """Knee contact force (BW): total and each compartment in their envelopes."""
    return min(KCF_ENVELOPE.part(total_bw), KCF_COMPARTMENT_ENVELOPE.part(medial_bw),
               KCF_COMPARTMENT_ENVELOPE.part(lateral_bw))


def activation_step_bounds(dt_s: float) -> tuple[float, float]:
    """(rise, fall) factors over ``dt_s``: a can rise by at most rise (1 - a) and fall by at most fall a."""
    return 1.0 - math.exp(-dt_s / TAU_ACTIVATION_S), 1.0 - math.exp(-dt_s / TAU_DEACTIVATION_S)


def activation_excess(a_prev: np.ndarray, a_now: np.ndarray, dt_s: float) -> np.ndarray:
    """Per muscle, the activation change over ``dt_s`` beyond what activation dynamics permit (<= 0 feasible)."""
    rise, fall = activation_step_bounds(dt_s)
    d = np.asarray(a_now, float) - np.asarray(a_prev, float)
    allowed = np.where(d > 0.0, rise * (1.0 - a_prev), fall * np.asarray(a_prev, float))
    return np.abs(d) - allowed


# ---------------------------------------------------------------------------------------------- per frame

@dataclass(frozen=True)
class ConfidenceParams:
    """Subject (body weight and height scale the forces and moments) and which estimates the chain makes."""

    mass_kg: float
    height_m: float
    muscles: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mass_kg) and self.mass_kg > 0):
            raise ValueError(f"mass_kg = {self.mass_kg!r}: must be a positive number (kg)")
        if not (math.isfinite(self.height_m) and self.height_m > 0):
            raise ValueError(f"height_m = {self.height_m!r}: must be a positive number (m)")

    @property
    def body_weight_n(self) -> float:
        return self.mass_kg * STANDARD_GRAVITY_M_S2


class FrameConfidence:
    """Per-frame confidence, preallocated: :meth:`step` writes :attr:`parts` (fixed order :data:`PART_NAMES`) and
    returns the confidence (their minimum); :attr:`lowest` is the index of the lowest part. No per-frame arrays
    are allocated (the 60 Hz path)."""

    names = PART_NAMES

    def __init__(self, params: ConfidenceParams, n_markers: int, n_muscles: int) -> None:
        self.params = params
        self.parts = np.ones(len(PART_NAMES))
        self.value = 1.0
        self.lowest = 0
        self._bw = params.body_weight_n
        self._bwh = params.body_weight_n * params.height_m
        self._markers_prev = np.full((n_markers, 3), np.nan)
        self._finite = np.zeros(n_markers, bool)
        self._eq = np.zeros((n_markers, 3), bool)
        self._nan3 = np.zeros((n_markers, 3), bool)
        self._score = np.zeros(n_markers)
        self._a_prev = np.full(n_muscles, np.nan)
        self._d = np.zeros(n_muscles)
        self._allowed = np.zeros(n_muscles)
        self._tmp = np.zeros(n_muscles)
        self._rising = np.zeros(n_muscles, bool)
        self.reset()

    def reset(self) -> None:
        """Forget the history (most markers seen, last change, previous activations)."""
        self._max_present = 0
        self._t_prev = math.nan
        self._t_changed = math.nan
        self._markers_prev[:] = np.nan
        self._a_prev[:] = np.nan

    def step(self, t_s: float, markers_m: np.ndarray, visibility: np.ndarray | None, reprojection_px: float,
             grf_n: np.ndarray, residual_force_n: np.ndarray, residual_moment_nm: np.ndarray, kam_pct_bw_ht: float,
             kem_pct_bw_ht: float, kcf_n: np.ndarray, activation: np.ndarray) -> float:
        """One frame. ``markers_m`` (M, 3) the chain's input (NaN missing), ``visibility`` (M,) scores 0..1 or None;
        ``grf_n`` (2, 3) per foot world z up; ``residual_*`` (3,) of the contact fit; ``kcf_n`` (3,) medial, lateral,
        total (N); ``activation`` (n_muscles,)."""
        p = self.parts
        p[I_VISIBILITY] = self._visibility(markers_m, visibility)
        p[I_FRESHNESS] = self._freshness(t_s, markers_m)
        p[I_REPROJECTION] = reprojection_part(float(reprojection_px))
        bw = self._bw
        rf = math.sqrt(float(residual_force_n[0]) ** 2 + float(residual_force_n[1]) ** 2 + float(residual_force_n[2]) ** 2)
        rm = math.sqrt(float(residual_moment_nm[0]) ** 2 + float(residual_moment_nm[1]) ** 2
                       + float(residual_moment_nm[2]) ** 2)
        p[I_DYNAMICS] = dynamics_part(rf / bw, 100.0 * rm / self._bwh)
        p[I_VGRF] = min(vgrf_part(float(grf_n[0, 2]) / bw), vgrf_part(float(grf_n[1, 2]) / bw))
        p[I_KAM] = KAM_ENVELOPE.part(float(kam_pct_bw_ht))
        p[I_KEM] = KEM_ENVELOPE.part(float(kem_pct_bw_ht))
        if self.params.muscles:
            p[I_KCF] = kcf_part(float(kcf_n[0]) / bw, float(kcf_n[1]) / bw, float(kcf_n[2]) / bw)
            p[I_ACTIVATION_RATE] = self._activation_rate(t_s, activation)
        else:
            p[I_KCF] = p[I_ACTIVATION_RATE] = 1.0
        self._t_prev = float(t_s)
        k = int(p.argmin())
        self.lowest = k
        self.value = float(p[k])
        return self.value

    def _visibility(self, markers_m: np.ndarray, visibility: np.ndarray | None) -> float:
        f = self._finite
        np.isfinite(markers_m[:, 0], out=f)
        n = int(f.sum())
        if n > self._max_present:
            self._max_present = n
        if self._max_present == 0:
            return 0.0
        if visibility is None:
            score = n
        else:                                            # np.clip(np.nan_to_num(visibility), 0, 1) in place
            v = self._score
            np.copyto(v, visibility)
            np.nan_to_num(v, copy=False)
            np.clip(v, 0.0, 1.0, out=v)
            score = float(np.dot(f, v))
        return visibility_part(score / self._max_present)

    def _freshness(self, t_s: float, markers_m: np.ndarray) -> float:
        eq, nan3 = self._eq, self._nan3
        np.equal(markers_m, self._markers_prev, out=eq)
        np.isnan(markers_m, out=nan3)
        np.logical_or(eq, nan3, out=eq)                  # a marker that disappeared is no new measurement
        changed = not bool(eq.all()) or self._t_changed != self._t_changed
        if changed and not bool(nan3.all()):
            self._t_changed = float(t_s)
        self._markers_prev[:] = markers_m
        if self._t_changed != self._t_changed:
            return 0.0                                   # nothing seen yet
        return freshness_part(float(t_s) - self._t_changed)

    def _activation_rate(self, t_s: float, a: np.ndarray) -> float:
        prev = self._a_prev
        dt = float(t_s) - self._t_prev
        if a.size == 0:
            return 1.0
        if not math.isfinite(float(np.dot(a, a))):      # NaN / inf check without a temporary array
            prev[:] = np.nan
            return 0.0
        if not (dt > 0.0 and math.isfinite(float(np.dot(prev, prev)))):
            prev[:] = a
            return 1.0
        rise, fall = activation_step_bounds(dt)
        d, allowed, tmp, up = self._d, self._allowed, self._tmp, self._rising
        np.subtract(a, prev, out=d)
        np.greater(d, 0.0, out=up)
        np.multiply(prev, fall, out=allowed)
        np.subtract(1.0, prev, out=tmp)
        tmp *= rise
        np.copyto(allowed, tmp, where=up)
        np.abs(d, out=d)
        d -= allowed
        prev[:] = a
        return ACTIVATION_RATE_ENVELOPE.part(float(d.max()))


def combine(parts: np.ndarray) -> np.ndarray:
    """The combination rule: confidence = minimum of the parts along the last axis (NaN parts count as 0)."""
    return np.nan_to_num(np.asarray(parts, float), nan=0.0).min(axis=-1)


# ---------------------------------------------------------------------------------------------- per trial

@dataclass(frozen=True)
class ConfidenceSummary:
    """Per trial: mean confidence, fraction of frames below ``threshold``, and for each part the fraction of the
    frames with confidence < 1 on which it was the lowest (the reason), plus each part's mean."""

    frames: int
    mean: float
    threshold: float
    fraction_below: float
    lowest_fraction: dict[str, float]
    part_mean: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {"frames": self.frames, "mean": self.mean, "threshold": self.threshold,
                "fraction_below": self.fraction_below, "lowest_part_fraction": self.lowest_fraction,
                "part_mean": self.part_mean}


def summarize(confidence: np.ndarray, parts: np.ndarray, names: tuple[str, ...] = PART_NAMES,
              threshold: float = LOW_CONFIDENCE) -> ConfidenceSummary:
    """Summary of (N,) confidences and their (N, P) parts."""
    c = np.asarray(confidence, float)
    P = np.nan_to_num(np.asarray(parts, float), nan=0.0)
    if P.ndim != 2 or P.shape != (c.size, len(names)):
        raise ValueError(f"parts shape {P.shape}: expected ({c.size}, {len(names)})")
    n = int(c.size)
    if n == 0:
        return ConfidenceSummary(0, math.nan, threshold, math.nan, {k: 0.0 for k in names}, {k: math.nan for k in names})
    low = c < 1.0
    arg = P[low].argmin(axis=1)
    m = max(int(low.sum()), 1)
    return ConfidenceSummary(n, float(np.nanmean(c)), float(threshold), float(np.mean(c < threshold)),
                             {k: float(np.sum(arg == i)) / m for i, k in enumerate(names)},
                             {k: float(P[:, i].mean()) for i, k in enumerate(names)})


# ---------------------------------------------------------------------------------------------- flags

@dataclass(frozen=True)
class EnvelopeFlag:
    """One estimate against its envelope over a trial: frames judged (finite), the fraction outside, the extremes."""

    name: str
    quantity: str
    unit: str
    lower: float
    upper: float
    frames: int
    fraction_outside: float
    minimum: float
    maximum: float
    source: str

    @property
    def implausible(self) -> bool:
        return self.fraction_outside > 0.0

    def note(self) -> str:
        """``IMPLAUSIBLE: ...`` line for the notes of an analysis (empty when inside on every frame)."""
        if not self.implausible:
            return ""
        return (f"IMPLAUSIBLE: {self.quantity} outside [{self.lower:g}, {self.upper:g}] {self.unit} on "
                f"{100 * self.fraction_outside:.1f} % of {self.frames} frames (range {self.minimum:.2f} .. "
                f"{self.maximum:.2f} {self.unit}; {self.source})")

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "quantity": self.quantity, "unit": self.unit, "lower": self.lower,
                "upper": self.upper, "frames": self.frames, "fraction_outside": self.fraction_outside,
                "min": self.minimum, "max": self.maximum, "implausible": self.implausible, "source": self.source}


def flag(envelope: Envelope, values: np.ndarray) -> EnvelopeFlag:
    """``values`` (N,) or (N, k) (every column judged; a frame is outside when any column is) against ``envelope``."""
    v = np.asarray(values, float)
    v2 = v.reshape(v.shape[0], -1) if v.ndim else v.reshape(1, 1)
    finite = np.isfinite(v2).any(axis=1)
    out = envelope.outside(v2).any(axis=1)
    n = int(finite.sum())
    lo = float(np.nanmin(v2)) if n else math.nan
    hi = float(np.nanmax(v2)) if n else math.nan
    return EnvelopeFlag(envelope.name, envelope.quantity, envelope.unit, envelope.lower, envelope.upper, n,
                        float(out[finite].mean()) if n else 0.0, lo, hi, envelope.source)


def estimate_flags(mass_kg: float, *, foot_vgrf_n: np.ndarray | None = None, kam_pct_bw_ht: np.ndarray | None = None,
                   kem_pct_bw_ht: np.ndarray | None = None, kcf_n: np.ndarray | None = None,
                   activation: np.ndarray | None = None, rate_hz: float | None = None) -> list[EnvelopeFlag]:
    """Every estimate given, against its envelope: ``foot_vgrf_n`` (N, feet) N; ``kcf_n`` (N, 3) medial, lateral,
    total N; ``activation`` (N, muscles) with ``rate_hz`` for the activation-rate envelope."""
    bw = mass_kg * STANDARD_GRAVITY_M_S2
    out: list[EnvelopeFlag] = []
    if foot_vgrf_n is not None:
        out.append(flag(VGRF_ENVELOPE, np.asarray(foot_vgrf_n, float) / bw))
    if kam_pct_bw_ht is not None:
        out.append(flag(KAM_ENVELOPE, kam_pct_bw_ht))
    if kem_pct_bw_ht is not None:
        out.append(flag(KEM_ENVELOPE, kem_pct_bw_ht))
    if kcf_n is not None:
        k = np.asarray(kcf_n, float) / bw
        out.append(flag(KCF_ENVELOPE, k[:, 2]))
        out.append(flag(KCF_COMPARTMENT_ENVELOPE, k[:, :2]))
    if activation is not None and rate_hz is not None and len(activation) > 1:
        a = np.asarray(activation, float)
        ex = np.full(a.shape[0], np.nan)
        with np.errstate(invalid="ignore"):
            ex[1:] = np.max(activation_excess(a[:-1], a[1:], 1.0 / rate_hz), axis=1)
        out.append(flag(ACTIVATION_RATE_ENVELOPE, ex))
    return out


def flags_dict(flags: list[EnvelopeFlag]) -> dict[str, dict[str, object]]:
    """``{name: flag.as_dict()}`` for JSON outputs."""
    return {f.name: f.as_dict() for f in flags}


def implausible_notes(flags: list[EnvelopeFlag]) -> list[str]:
    """The ``IMPLAUSIBLE`` note of every flag with frames outside its envelope."""
    return [f.note() for f in flags if f.implausible]


def envelope_table(envelopes: Mapping[str, Envelope] = ENVELOPES) -> list[dict[str, object]]:
    """Rows name / quantity / unit / lower / upper / margin / source (for a report or the README)."""
    return [{"name": e.name, "quantity": e.quantity, "unit": e.unit, "lower": e.lower, "upper": e.upper,
             "margin": e.margin, "source": e.source} for e in envelopes.values()]
