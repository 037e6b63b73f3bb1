"""Soft-tissue compensation: a fast surrogate of the cuff interface and the motor pre-compensation it allows.

Surrogate (fitted to the flexcomp simulations of :mod:`models.tissue.soft_tissue`): with ``d = q_exo - q_knee``
the cuff-bone deflection (rad) and ``dd`` its rate (rad/s), the torque delivered to the leg is

    tau_int(d, dd) = f(d) + b dd          (N*m, flexion positive; f piecewise linear, increasing; b >= 0)

and the exo link (motor rotor, link and cuff shells; gravity compensated) obeys

    J q_exo'' = tau_motor - tau_int.

So the rigid assumption (``tau_int = tau_motor``) misses ``J q_exo''``: the link must be accelerated with
the leg and through the tissue's deflection. The compensator, per torque-loop cycle, given the desired
joint torque ``tau_des``::

    d_des   = f^-1(tau_des), the deflection at which the static curve delivers tau_des (exact inverse)
    a_exo   = q_knee'' + d_des''                     (knee acceleration from the knee rate, filtered)
    tau_mot = tau_des + J a_exo + k_fb (tau_des - tau_int(d, dd))

``k_fb`` closes a loop on the interface torque estimated from the measured deflection (motor encoder
minus a knee angle sensor); 0 gives pure feed-forward. The compensator does not limit: the safety
supervisor downstream clips and slews whatever it is given. Pure-Python floats, no allocation per cycle.

The identified parameters live in a versioned JSON artifact (``models/artifacts/tissue_compensator_v1.json``)
with their provenance; ``exo tissue calibrate`` regenerates it.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ARTIFACT_PATH = Path(__file__).resolve().parents[1] / "models" / "artifacts" / "tissue_compensator_v1.json"
ARTIFACT_VERSION = 1


@dataclass(frozen=True)
class TissueSurrogate:
    """Interface stiffness-damping model and exo-link inertia (SI units: N*m, rad, s, kg*m^2).

    Static curve: piecewise linear through ``knots_rad`` (increasing) with a positive slope per segment
    (``slopes_nm_per_rad``, one fewer than knots), ``c0_nm`` at the first knot; outside the knots it
    continues with the end slopes. Increasing everywhere, so it has an exact inverse."""

    c0_nm: float
    knots_rad: tuple[float, ...]
    slopes_nm_per_rad: tuple[float, ...]
    b_nm_s_per_rad: float
    exo_inertia_kg_m2: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "knots_rad", tuple(float(x) for x in self.knots_rad))
        object.__setattr__(self, "slopes_nm_per_rad", tuple(float(x) for x in self.slopes_nm_per_rad))
        for name in ("c0_nm", "b_nm_s_per_rad", "exo_inertia_kg_m2"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"TissueSurrogate.{name} = {v!r}: must be finite")
        for name in ("exo_inertia_kg_m2", "b_nm_s_per_rad"):
            if getattr(self, name) < 0:
                raise ValueError(f"TissueSurrogate.{name} = {getattr(self, name)!r}: must be >= 0")
        k, sl = self.knots_rad, self.slopes_nm_per_rad
        if len(k) < 2 or len(sl) != len(k) - 1:
            raise ValueError(f"TissueSurrogate.knots_rad ({len(k)}) / slopes_nm_per_rad ({len(sl)}): need >= 2 knots "
                             "and one slope per segment")
        if not all(math.isfinite(x) for x in k) or any(b <= a for a, b in zip(k, k[1:])):
            raise ValueError(f"TissueSurrogate.knots_rad = {k!r}: must be finite and increasing")
        if not all(math.isfinite(x) and x > 0 for x in sl):
            raise ValueError(f"TissueSurrogate.slopes_nm_per_rad = {sl!r}: every slope must be finite and > 0 "
                             "(a static curve that increases everywhere)")
        tk = [self.c0_nm]
        for i, s_ in enumerate(sl):
            tk.append(tk[-1] + s_ * (k[i + 1] - k[i]))
        object.__setattr__(self, "_torque_at_knots", tuple(tk))

    @property
    def deflection_min_rad(self) -> float:
        return self.knots_rad[0]

    @property
    def deflection_max_rad(self) -> float:
        return self.knots_rad[-1]

    def _segment(self, d: float) -> int:
        k = self.knots_rad
        i = bisect_right(k, d) - 1
        return 0 if i < 0 else min(i, len(k) - 2)

    def static_torque(self, d: float) -> float:
        i = self._segment(d)
        return self._torque_at_knots[i] + self.slopes_nm_per_rad[i] * (d - self.knots_rad[i])  # type: ignore[attr-defined]

    def stiffness(self, d: float) -> float:
        """d tau / d d (N*m/rad)."""
        return self.slopes_nm_per_rad[self._segment(d)]

    def interface_torque(self, d: float, dd: float) -> float:
        """Delivered torque (N*m) at deflection ``d`` (rad) and rate ``dd`` (rad/s)."""
        return self.static_torque(d) + self.b_nm_s_per_rad * dd

    def deflection_for(self, torque_nm: float, guess: float = 0.0) -> float:
        """Deflection (rad) at which the static curve gives ``torque_nm``, clamped to the fitted range."""
        tk = self._torque_at_knots  # type: ignore[attr-defined]
        if torque_nm <= tk[0]:
            return self.knots_rad[0]
        if torque_nm >= tk[-1]:
            return self.knots_rad[-1]
        i = min(bisect_right(tk, torque_nm) - 1, len(tk) - 2)
        return self.knots_rad[i] + (torque_nm - tk[i]) / self.slopes_nm_per_rad[i]

    def to_dict(self) -> dict[str, Any]:
        return {"c0_nm": self.c0_nm, "knots_rad": list(self.knots_rad),
                "slopes_nm_per_rad": list(self.slopes_nm_per_rad), "b_nm_s_per_rad": self.b_nm_s_per_rad,
                "exo_inertia_kg_m2": self.exo_inertia_kg_m2}


# ----------------------------------------------------------------------------- identification

def fit_surrogate(records: Sequence[Mapping[str, np.ndarray]], dt_s: float, n_segments: int = 6
                  ) -> tuple[TissueSurrogate, dict[str, float]]:
    """Fit the surrogate to bench records (``models.tissue.soft_tissue.characterise`` signals: ``motor_nm``,
    ``delivered_nm``, ``knee_rad``, ``knee_rad_s``, ``exo_rad``, ``exo_rad_s``, one sample per ``dt_s``).

    Static curve and damping: bounded least squares on a monotone basis (``n_segments`` segments between
    quantiles of the deflections seen; each slope >= 1 N*m/rad, b >= 0). Inertia: ``motor - delivered =
    J * exo acceleration`` (central differences). Returns the surrogate and fit figures (RMSE N*m, R^2)."""
    if not records:
        raise ValueError("records: need at least one bench record")
    if not (isinstance(n_segments, int) and 1 <= n_segments <= 20):
        raise ValueError(f"n_segments = {n_segments!r}: allowed 1..20")
    ds, dds, tau, acc_rows, acc_tau = [], [], [], [], []
    for i, r in enumerate(records):
        for key in ("motor_nm", "delivered_nm", "knee_rad", "knee_rad_s", "exo_rad", "exo_rad_s"):
            if key not in r:
                raise ValueError(f"records[{i}]: missing {key!r}")
        ds.append(np.asarray(r["exo_rad"]) - np.asarray(r["knee_rad"]))
        dds.append(np.asarray(r["exo_rad_s"]) - np.asarray(r["knee_rad_s"]))
        tau.append(np.asarray(r["delivered_nm"]))
        acc = (np.asarray(r["exo_rad_s"])[2:] - np.asarray(r["exo_rad_s"])[:-2]) / (2 * dt_s)
        acc_rows.append(acc)
        acc_tau.append((np.asarray(r["motor_nm"]) - np.asarray(r["delivered_nm"]))[1:-1])
    d = np.concatenate(ds)
    dd = np.concatenate(dds)
    y = np.concatenate(tau)
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(dd)) and np.all(np.isfinite(y))):
        raise ValueError("records: non-finite samples")
    knots = np.unique(np.quantile(d, np.linspace(0.0, 1.0, n_segments + 1)))
    if knots.size < 2:
        raise ValueError(f"records: the deflection never changes (d = {d[0]!r}); nothing to fit")
    widths = np.diff(knots)
    ramps = np.clip(d[:, None] - knots[None, :-1], 0.0, widths[None, :])
    A = np.c_[np.ones_like(d), ramps, dd]
    from scipy.optimize import lsq_linear
    scale = np.maximum(np.abs(A).max(axis=0), 1e-12)
    lower = np.r_[-np.inf, np.full(knots.size - 1, 1.0), 0.0] * scale
    lower[0] = -np.inf
    sol = lsq_linear(A / scale, y, bounds=(lower, np.full(A.shape[1], np.inf)), method="bvls")
    coef = sol.x / scale
    pred = A @ coef
    a = np.concatenate(acc_rows)
    m = np.concatenate(acc_tau)
    J = float(a @ m / (a @ a)) if a @ a > 0 else 0.0
    sur = TissueSurrogate(c0_nm=float(coef[0]), knots_rad=tuple(float(x) for x in knots),
                          slopes_nm_per_rad=tuple(max(1.0, float(x)) for x in coef[1:-1]),
                          b_nm_s_per_rad=max(0.0, float(coef[-1])), exo_inertia_kg_m2=max(0.0, J))
    ss = float(np.sum((y - y.mean()) ** 2))
    ssm = float(np.sum((m - m.mean()) ** 2))
    stats = {"interface_rmse_nm": float(np.sqrt(np.mean((y - pred) ** 2))),
             "interface_r2": 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else math.nan,
             "inertia_rmse_nm": float(np.sqrt(np.mean((m - J * a) ** 2))),
             "inertia_r2": 1.0 - float(np.sum((m - J * a) ** 2)) / ssm if ssm > 0 else math.nan,
             "samples": int(y.size)}
    return sur, stats


# ----------------------------------------------------------------------------- artifact

def save_artifact(surrogate: TissueSurrogate, provenance: Mapping[str, Any], path: str | Path = ARTIFACT_PATH) -> Path:
    """Write the versioned artifact (JSON): parameters and provenance."""
    from models.io.artifact_file import write_versioned_artifact

    return write_versioned_artifact(path, "tissue_compensator", ARTIFACT_VERSION, {"surrogate": surrogate.to_dict()},
                                    provenance, "exo tissue calibrate --out models/artifacts/tissue_compensator_v1.json")


def load_artifact(path: str | Path = ARTIFACT_PATH) -> tuple[TissueSurrogate, dict[str, Any]]:
    """Read the artifact; the surrogate and the whole document."""
    from models.io.artifact_file import read_versioned_artifact

    fields, doc = read_versioned_artifact(path, "tissue_compensator", ARTIFACT_VERSION, "tissue compensator artifact",
                                          "surrogate", set(TissueSurrogate.__dataclass_fields__),
                                          "exo tissue calibrate")
    return TissueSurrogate(**fields), doc


# ----------------------------------------------------------------------------- compensator

@dataclass(frozen=True, slots=True)
class CompensatorParams:
    feedback_gain: float = 0.0              # k_fb on the interface-torque estimate (0: feed-forward only)
    accel_cutoff_hz: float = 40.0           # first-order filter on the differentiated rates
    inertia_scale: float = 1.0              # fraction of the identified inertia fed forward
    deflection_feedforward: bool = False    # include d_des'' (the link's acceleration through the tissue)

    def __post_init__(self) -> None:
        for name, lo, hi in (("feedback_gain", 0.0, 10.0), ("accel_cutoff_hz", 1.0, 500.0),
                             ("inertia_scale", 0.0, 2.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"CompensatorParams.{name} = {v!r}: allowed {lo} <= {name} <= {hi}")


class TissueCompensator:
    """Stage object for the torque loop: ``step(...) -> motor torque (N*m)``. No globals, no allocation."""

    __slots__ = (
        "_acc_k",
        "_d_guess",
        "_d_prev",
        "_dacc",
        "_dd_prev",
        "_primed",
        "_vk_prev",
        "last_deflection_des_rad",
        "last_interface_nm",
        "params",
        "surrogate",
    )

    def __init__(self, surrogate: TissueSurrogate, params: CompensatorParams | None = None) -> None:
        self.surrogate = surrogate
        self.params = params or CompensatorParams()
        self.reset()

    def reset(self) -> None:
        self._vk_prev = 0.0
        self._acc_k = 0.0
        self._d_prev = 0.0
        self._dd_prev = 0.0
        self._dacc = 0.0
        self._d_guess = 0.0
        self._primed = 0
        self.last_interface_nm = 0.0
        self.last_deflection_des_rad = 0.0

    def step(self, desired_nm: float, knee_rad: float, knee_rad_s: float, exo_rad: float, exo_rad_s: float,
             dt_s: float) -> float:
        """Motor torque (N*m) so that the torque delivered to the leg tracks ``desired_nm``.

        ``knee_rad``, ``knee_rad_s``: the leg's knee angle and rate (a shank sensor); ``exo_rad``,
        ``exo_rad_s``: the motor side (encoder); ``dt_s``: since the previous call. Non-finite inputs
        give the desired torque unchanged (the rigid assumption) and reset the filters.
        """
        s = self.surrogate
        p = self.params
        if not (math.isfinite(desired_nm) and math.isfinite(knee_rad_s) and math.isfinite(exo_rad)
                and math.isfinite(knee_rad) and math.isfinite(exo_rad_s) and math.isfinite(dt_s) and dt_s > 0):
            self.reset()
            return desired_nm
        d_des = s.deflection_for(desired_nm, self._d_guess)
        self._d_guess = d_des
        a = 1.0 - math.exp(-2.0 * math.pi * p.accel_cutoff_hz * dt_s)
        if self._primed:
            acc_k = (knee_rad_s - self._vk_prev) / dt_s
            self._acc_k += a * (acc_k - self._acc_k)
            dd_des = (d_des - self._d_prev) / dt_s
            if self._primed > 1:
                self._dacc += a * ((dd_des - self._dd_prev) / dt_s - self._dacc)
            self._dd_prev = dd_des
        self._primed = min(2, self._primed + 1)
        self._vk_prev = knee_rad_s
        self._d_prev = d_des
        acc = self._acc_k + (self._dacc if p.deflection_feedforward else 0.0)
        tau = desired_nm + p.inertia_scale * s.exo_inertia_kg_m2 * acc
        if p.feedback_gain > 0.0:
            d = exo_rad - knee_rad
            est = s.interface_torque(d, exo_rad_s - knee_rad_s)
            self.last_interface_nm = est
            tau += p.feedback_gain * (desired_nm - est)
        self.last_deflection_des_rad = d_des
        return tau


# ----------------------------------------------------------------------------- calibration

# (frequency Hz, amplitude N*m, offset N*m) of the motor torque on the bench: the first harmonics of a gait
# cycle's assistance (0.5-1 Hz strides, bumps of 0.1-0.2 s) at extension loads up to 16 N*m, and a flexion case
DEFAULT_CASES: tuple[tuple[float, float, float], ...] = (
    (1.0, 8.0, -8.0), (2.0, 6.0, -6.0), (4.0, 4.0, -6.0), (8.0, 3.0, -4.0), (1.0, 4.0, 3.0))


def calibrate(tissue: Any = None, cases: Sequence[tuple[float, float, float]] = DEFAULT_CASES,
              seconds_per_case: float = 2.0) -> tuple[TissueSurrogate, dict[str, Any]]:
    """Run the flexcomp bench (:func:`models.tissue.soft_tissue.characterise`) on ``cases`` and fit the surrogate.

    Returns the surrogate and its provenance: the tissue parameters, every case's figures (delivered vs
    motor torque RMSE, r, first-harmonic gain and phase, energy absorbed per cycle: the rigid assumption's
    error) and the fit statistics."""
    import time

    from models.tissue.soft_tissue import (
        CharacterisationCase,
        CuffTissueParams,
        characterise,
    )

    tissue = tissue or CuffTissueParams()
    if not cases:
        raise ValueError("cases: need at least one (frequency_hz, amplitude_nm, offset_nm)")
    if not (math.isfinite(seconds_per_case) and 0.2 <= seconds_per_case <= 60.0):
        raise ValueError(f"seconds_per_case = {seconds_per_case!r}: allowed 0.2 <= seconds_per_case <= 60 s")
    bench = []
    for i, c in enumerate(cases):
        f, amp, off = (float(x) for x in c)
        if not (0.1 <= f <= 50.0) or not (0.0 < amp <= 30.0) or not (abs(off) <= 30.0):
            raise ValueError(f"cases[{i}] = {c!r}: allowed 0.1 <= frequency_hz <= 50, 0 < amplitude_nm <= 30, "
                             f"|offset_nm| <= 30")
        bench.append(CharacterisationCase(frequency_hz=f, amplitude_nm=amp, offset_nm=off,
                                          cycles=max(2.0, seconds_per_case * f)))
    t0 = time.perf_counter()
    results = characterise(tissue, bench)
    elapsed = time.perf_counter() - t0
    sur, stats = fit_surrogate([r["signals"] for r in results], tissue.timestep_s)
    prov = {
        "method": "bounded least squares: tau_delivered = f(d) + b dd, f piecewise linear between deflection "
                  "quantiles with slopes >= 1 N*m/rad, b >= 0, on flexcomp bench runs "
                  "(models.tissue.soft_tissue.characterise: knee swinging 0.6 +- 0.4 rad at 1 Hz, sinusoidal motor torque); "
                  "J from motor - delivered = J * exo acceleration",
        "tissue": tissue.summary(),
        "cases": [{**r["case"], "rmse_rigid_nm": r["rmse_rigid_nm"], "corr_rigid": r["corr_rigid"],
                   "gain": r["gain"], "phase_deg": r["phase_deg"],
                   "energy_absorbed_j_per_cycle": r["energy_absorbed_j_per_cycle"],
                   "max_deflection_rad": r["max_deflection_rad"]} for r in results],
        "fit": stats,
        "bench_seconds": elapsed,
    }
    return sur, prov
