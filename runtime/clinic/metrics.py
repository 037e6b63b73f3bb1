"""Summary metrics of one analysed trial, for the session store (NULL where the analysis gives none).

Definitions (side = the limb of interest; stances = its loaded intervals as found by the analysis):

* peak / impulse KAM and KEM (%BW*ht, %BW*ht*s): per stance from :func:`models.dynamics.knee_moments.stance_summaries`
  (peak = maximum, impulse = trapezoidal time integral over the stance), then the mean over stances;
* peak medial / lateral / total knee contact force (BW): maximum over stance frames, mean over stances
  (needs static optimisation: ``AnalyzeParams(muscles=True)``);
* medial load share: medial / (medial + lateral) contact-force impulse over all stance frames;
* co-contraction index: Rudolph et al. 2000 quadriceps-hamstrings CCI of the static-optimisation activations
  (:func:`models.muscles.knee_contact.quadriceps_hamstrings_cocontraction`), mean over stance frames. It is computed
  from model activations, not EMG, so EMG-based published values are not directly comparable;
* limb symmetry (%): 100 * peak vertical GRF of the side / peak vertical GRF of the other side, each over a
  *complete* stance (unloaded before and after, inside the trial); NULL when either side has none
  (e.g. the PS trials, trimmed to one gait cycle starting at heel strike);
* assistance: only exoskeleton runs have it (NULL for lab trials).
"""
from __future__ import annotations

import hashlib
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

SOFTWARE = "exo_runtime"


def _mean(vals: list[float]) -> float | None:
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _stance_mask(time_s: np.ndarray, a: float, b: float) -> np.ndarray:
    return (time_s >= a - 1e-12) & (time_s <= b + 1e-12)


def complete_stance_peaks(time_s: np.ndarray, vertical_n: np.ndarray, threshold_n: float) -> list[float]:
    """Peak vertical force (N) of every loaded interval (>= threshold) that starts and ends inside the trial."""
    loaded = np.asarray(vertical_n) >= threshold_n
    edges = np.flatnonzero(np.diff(np.r_[0, loaded.astype(int), 0]))
    peaks = []
    for a, b in zip(edges[::2], edges[1::2]):
        if a > 0 and b < loaded.size and b - a >= 2:
            peaks.append(float(np.max(vertical_n[a:b])))
    return peaks


def analysis_metrics(result: Any, kcf: Any = None) -> tuple[dict[str, float | None], int]:
    """(metric -> value or None, number of stances) of a :class:`models.trial_analysis.TrialAnalysis` and, when
    static optimisation ran, its :class:`models.muscles.knee_contact.KneeContactTrial` ``kcf``."""
    from models.dynamics.knee_moments import stance_summaries

    t = result.time_s
    stances = list(result.stance)
    out: dict[str, float | None] = {}
    kam = stance_summaries(t, result.kam_pct_bw_ht, stances) if stances else []
    kem = stance_summaries(t, result.kem_pct_bw_ht, stances) if stances else []
    out["peak_kam_pct_bw_ht"] = _mean([s.peak for s in kam])
    out["impulse_kam_pct_bw_ht_s"] = _mean([s.impulse for s in kam])
    out["peak_kem_pct_bw_ht"] = _mean([s.peak for s in kem])
    out["impulse_kem_pct_bw_ht_s"] = _mean([s.impulse for s in kem])
    in_stance = np.zeros(t.size, dtype=bool)
    for a, b in stances:
        in_stance |= _stance_mask(t, a, b)
    if kcf is not None and stances:
        for key, arr in (("peak_kcf_medial_bw", kcf.medial_bw), ("peak_kcf_lateral_bw", kcf.lateral_bw),
                         ("peak_kcf_total_bw", kcf.total_bw)):
            out[key] = _mean([float(np.nanmax(arr[_stance_mask(t, a, b)])) for a, b in stances])
        med = lat = 0.0
        for a, b in stances:
            m = _stance_mask(t, a, b)
            med += float(np.trapezoid(kcf.medial_n[m], t[m]))
            lat += float(np.trapezoid(kcf.lateral_n[m], t[m]))
        out["medial_load_share"] = med / (med + lat) if (med + lat) > 0 else None
    else:
        out.update(peak_kcf_medial_bw=None, peak_kcf_lateral_bw=None, peak_kcf_total_bw=None, medial_load_share=None)
    so = result.muscles
    if so is not None and in_stance.any():
        from models.muscles.knee_contact import quadriceps_hamstrings_cocontraction

        cci = quadriceps_hamstrings_cocontraction(so.activation, so.muscle_names, result.params.side)
        out["cocontraction_index"] = _mean([float(np.nanmean(cci[in_stance]))])
    else:
        out["cocontraction_index"] = None
    side = result.params.side
    other = "right" if side == "left" else "left"
    thr = result.params.grf_threshold_n
    mine = complete_stance_peaks(t, result.foot_force_n[side][:, 2], thr)
    theirs = complete_stance_peaks(t, result.foot_force_n[other][:, 2], thr)
    out["limb_symmetry_pct"] = 100.0 * float(np.mean(mine)) / float(np.mean(theirs)) if mine and theirs else None
    out["assistance_impulse_nm_s"] = None
    out["assistance_peak_nm"] = None
    return out, len(stances)


def envelope_flags(result: Any, kcf: Any = None) -> list[Any]:
    """Each estimate of a :class:`models.trial_analysis.TrialAnalysis` against its physiological envelope
    (``models.confidence``: vertical GRF per foot, KAM, KEM, activation rate) and, when static optimisation ran, the
    knee contact force of ``kcf``; a list of :class:`models.confidence.EnvelopeFlag` (fraction of frames outside)."""
    from models.confidence import estimate_flags

    flags = list(result.envelope_flags())
    if kcf is not None:
        flags += estimate_flags(result.params.mass_kg,
                                kcf_n=np.column_stack([kcf.medial_n, kcf.lateral_n, kcf.total_n]))
    return flags


def software_version() -> str:
    """``exo_runtime <version>+<git commit>`` (``+unknown`` outside a git checkout; ``.dirty`` with local edits)."""
    try:
        from importlib.metadata import version

        v = version(SOFTWARE)
    except Exception:                      # not installed (running from a source tree)
        v = "0+source"
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{SOFTWARE} {v}+{commit or 'unknown'}{'.dirty' if dirty else ''}"[:64]


def model_hash(model: Any) -> str:
    """SHA-256 of a compiled MuJoCo model's binary form (``mj_saveModel``): changes with any model parameter."""
    import mujoco

    buf = np.zeros(mujoco.mj_sizeModel(model), dtype=np.uint8)
    mujoco.mj_saveModel(model, None, buf)
    return hashlib.sha256(buf.tobytes()).hexdigest()
