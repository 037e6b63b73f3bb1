"""Where a kinematics-only vertical GRF error comes from: per gait phase of one foot's stance, and per contact event.

Phases of a stance of the foot of interest (the frames where its plate reads at least ``threshold_n``), from the
other foot's contact (its plate where it is on one, else the estimate's contact state, since a plate cannot see a
foot beside it)::

    initial_double_support   stance start .. the other foot's last frame in contact (heel strike, loading response)
    single_support_early     first half of single support (loading response to mid-stance)
    single_support_late      second half of single support (mid-stance to push-off)
    terminal_double_support  the other foot's heel strike .. toe off of the foot of interest (the trailing foot)

Each phase's error ``e = F_est,z - F_plate,z`` is split into what the whole-body force explains and what the split
between the feet explains::

    e = (T_est - T_plate) * r_plate  +  (r_est - r_plate) * T_est        T: both feet's vertical force,
                                                                         r = F_z / T: the foot's share
    "total part"                        "split part"

exact wherever both feet's plate forces are known (``plate_complete``); elsewhere the parts are NaN.  A heel strike
or toe off detected late or early shows in the double-support phases' split part; a plate that reads heavy (or a
wrong mass) in the total part of every phase.  Units: forces N, errors in %BW, times in ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.grf.smoothing import true_runs

__all__ = ["PHASES", "PhaseError", "contact_event_errors_ms", "phase_breakdown", "stance_phases"]

#: Phase names in stance order; frames outside every stance of the foot of interest get ``""``.
PHASES: tuple[str, ...] = ("initial_double_support", "single_support_early", "single_support_late",
                           "terminal_double_support")


@dataclass(frozen=True, slots=True)
class PhaseError:
    """Vertical GRF error of one phase: ``frames``, ``rmse``/``bias`` (%BW), ``mse_fraction`` (of the stance's
    summed squared error), ``total_part_rms``/``split_part_rms`` (%BW, over the plate-complete frames; NaN if none)."""

    frames: int
    rmse: float
    bias: float
    mse_fraction: float
    total_part_rms: float
    split_part_rms: float

    def as_dict(self) -> dict[str, float]:
        return {"frames": self.frames, "rmse_pct_bw": self.rmse, "bias_pct_bw": self.bias,
                "mse_fraction": self.mse_fraction, "total_part_rms_pct_bw": self.total_part_rms,
                "split_part_rms_pct_bw": self.split_part_rms}


def _bool_1d(name: str, x: np.ndarray, n: int) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    return a.astype(bool)


def stance_phases(loaded: np.ndarray, other_contact: np.ndarray, min_frames: int = 5) -> np.ndarray:
    """Phase label (N,) of every frame (module doc): ``loaded`` (N,) the foot of interest on its plate,
    ``other_contact`` (N,) the other foot in contact.  Stances shorter than ``min_frames`` are left unlabelled."""
    loaded = np.asarray(loaded, bool)
    n = loaded.size
    other = _bool_1d("other_contact", other_contact, n)
    out = np.full(n, "", dtype=object)
    for a, b in true_runs(loaded):
        if b - a < min_frames:
            continue
        j = a
        while j < b and other[j]:
            j += 1
        k = b
        while k > j and other[k - 1]:
            k -= 1
        mid = j + (k - j) // 2
        out[a:j] = PHASES[0]
        out[j:mid] = PHASES[1]
        out[mid:k] = PHASES[2]
        out[k:b] = PHASES[3]
    return out


def phase_breakdown(est_z: np.ndarray, est_other_z: np.ndarray, plate_z: np.ndarray, plate_other_z: np.ndarray,
                    other_contact: np.ndarray, body_weight_n: float, threshold_n: float = 20.0
                    ) -> dict[str, PhaseError]:
    """Per-phase vertical GRF error of the foot of interest (module doc).  ``est_z``/``plate_z`` (N,): its
    estimated and plate vertical force (N); ``est_other_z``/``plate_other_z``: the other foot's; ``other_contact``
    (N,): the other foot in contact (its plate where it is on one, else the estimate's contact state).  A frame is
    plate-complete where the other foot is on its plate (``plate_other_z >= threshold_n``) or not in contact."""
    e = np.nan_to_num(np.asarray(est_z, float))
    n = e.size
    eo = np.nan_to_num(np.asarray(est_other_z, float))
    m = np.asarray(plate_z, float)
    mo = np.nan_to_num(np.asarray(plate_other_z, float))
    for name, arr in (("est_other_z", eo), ("plate_z", m), ("plate_other_z", mo)):
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not (math.isfinite(body_weight_n) and body_weight_n > 0):
        raise ValueError(f"body_weight_n must be > 0, got {body_weight_n!r}")
    other = _bool_1d("other_contact", other_contact, n)
    loaded = np.nan_to_num(m) >= threshold_n
    ph = stance_phases(loaded, other | (mo >= threshold_n))
    err = e - np.nan_to_num(m)
    total_sq = float(np.sum(err[ph != ""] ** 2))
    complete = (mo >= threshold_n) | ~other
    te, tm = e + eo, np.nan_to_num(m) + mo
    r_m = np.divide(np.nan_to_num(m), tm, out=np.zeros(n), where=tm > 1e-9)
    r_e = np.divide(e, te, out=np.zeros(n), where=np.abs(te) > 1e-9)
    tot_part = (te - tm) * r_m
    split_part = (r_e - r_m) * te
    s = 100.0 / body_weight_n
    out: dict[str, PhaseError] = {}
    for name in PHASES:
        sel = ph == name
        if not sel.any():
            continue
        es = err[sel]
        cs = sel & complete
        out[name] = PhaseError(
            frames=int(sel.sum()), rmse=s * float(np.sqrt(np.mean(es ** 2))), bias=s * float(np.mean(es)),
            mse_fraction=float(np.sum(es ** 2)) / total_sq if total_sq > 0 else 0.0,
            total_part_rms=s * float(np.sqrt(np.mean(tot_part[cs] ** 2))) if cs.any() else math.nan,
            split_part_rms=s * float(np.sqrt(np.mean(split_part[cs] ** 2))) if cs.any() else math.nan)
    return out


def contact_event_errors_ms(est_contact: np.ndarray, plate_loaded: np.ndarray, time_s: np.ndarray,
                            max_ms: float = 100.0) -> list[dict[str, float]]:
    """Onset and offset error (ms, estimate minus plate; positive = detected late) of every plate contact of one
    foot, against the estimated contact that overlaps it most (``time_s`` (N,): frame times, s, evenly spaced).  An
    edge cut by either end of the trial, or a plate contact with no estimated contact within ``max_ms``, is NaN."""
    c = np.asarray(est_contact, bool)
    n = c.size
    pl = _bool_1d("plate_loaded", plate_loaded, n)
    t = np.asarray(time_s, float)
    if t.shape != (n,) or n < 2 or not np.all(np.diff(t) > 0):
        raise ValueError(f"time_s must be increasing with shape ({n},), got shape {t.shape}")
    rate_hz = (n - 1) / float(t[-1] - t[0])
    est_runs = true_runs(c)
    reach = round(max_ms * 1e-3 * rate_hz)
    out = []
    for a, b in true_runs(pl):
        if a == 0 and b == n:
            continue
        best, best_ov = None, -math.inf
        for x, y in est_runs:
            ov = min(b, y) - max(a, x)
            if ov > best_ov and ov > -reach:
                best, best_ov = (x, y), ov
        if best is None:
            out.append({"plate_onset_s": float(t[a]), "onset_ms": math.nan, "offset_ms": math.nan})
            continue
        x, y = best
        out.append({"plate_onset_s": float(t[a]),
                    "onset_ms": 1e3 * (x - a) / rate_hz if a > 0 and x > 0 else math.nan,
                    "offset_ms": 1e3 * (y - b) / rate_hz if b < n and y < n else math.nan})
    return out
