"""Training data of the learned knee contact force estimator: the physics chain over every shared trial and
over augmented versions of it (``models.muscles.kcf_learned_train`` trains on the result).

Each variant is a new marker recording at 60 Hz that the same chain (``KinematicsToLoads.for_subject``,
``run_offline``) turns into per-frame features (``models.muscles.kcf_features``) and targets (the chain's medial
and lateral KCF, BW). The augmentations (:data:`VARIANTS`), each applied to the markers before the chain:

- ``original``: the recording held to 60 Hz (``resample_hold``), what the live loop sees;
- ``speed_0.85`` / ``speed_1.15``: uniform time scaling (slower / faster walking), markers linearly interpolated;
- ``warp``: a smooth non-uniform time warp, local speed 1 +- 0.2 (one sine period over the trial);
- ``stride_0.94`` / ``stride_1.06``: the marker cloud scaled about its first-frame ground point (stride length
  and body size together), the subject's height scaled alike, mass unchanged;
- ``noise``: 3 mm Gaussian noise on every marker coordinate (seeded);
- ``mirror``: reflected through a vertical plane (y -> -y), left and right marker names swapped, the other knee.

Run: ``python -m runtime.estimation.kcf_dataset --out models/artifacts/`` builds the data (cached in ``--cache``)
and trains (the one command that rebuilds the artefact).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.io.shared_trials import SharedTrial, shared_trials
from models.muscles.kcf_features import FEATURE_NAMES, KcfFeatures, STANDARD_GRAVITY_M_S2
from runtime.estimation.chain import (EstimatorParams, KinematicsToLoads, MarkerRecording, load_marker_recording,
                                      resample_hold, run_offline)

RATE_HZ = 60.0
VARIANTS = ("original", "speed_0.85", "speed_1.15", "warp", "stride_0.94", "stride_1.06", "noise", "mirror")
NOISE_M = 0.003
SEED = 0


def _interp_markers(rec: MarkerRecording, t_src: np.ndarray) -> np.ndarray:
    """Markers (len(t_src), M, 3) linearly interpolated at source times ``t_src`` (NaN if a neighbour is NaN)."""
    t = rec.time_s
    i1 = np.clip(np.searchsorted(t, t_src, side="right"), 1, t.size - 1)
    i0 = i1 - 1
    w = ((t_src - t[i0]) / (t[i1] - t[i0]))[:, None, None]
    return rec.markers_m[i0] * (1.0 - w) + rec.markers_m[i1] * w


def _time_mapped(rec: MarkerRecording, speed: float | None) -> MarkerRecording:
    """At ``RATE_HZ``: uniform speed factor ``speed``, or (None) the sine warp of local speed 1 +- 0.2."""
    t0, T = rec.time_s[0], rec.time_s[-1] - rec.time_s[0]
    if speed is not None:
        n = int(np.floor(T / speed * RATE_HZ)) + 1
        u = np.arange(n) / RATE_HZ
        src = t0 + u * speed
    else:
        n = int(np.floor(T * RATE_HZ)) + 1
        u = np.arange(n) / RATE_HZ
        a = 0.2 * T / (2 * np.pi)                       # d(src)/du = 1 + 0.2 sin(2 pi u / T)
        src = t0 + u + a * (1.0 - np.cos(2 * np.pi * u / T))
    src = np.clip(src, t0, rec.time_s[-1])
    return MarkerRecording(rec.name, t0 + u, _interp_markers(rec, src), RATE_HZ)


def _swap_side(name: str) -> str:
    """'LAsis' <-> 'RAsis', 'L_Asis' <-> 'R_Asis', 'L.ASIS' <-> 'R.ASIS' (unchanged when unsided)."""
    m = re.match(r"^([LR])([A-Z_.].*)$", name)
    return ({"L": "R", "R": "L"}[m.group(1)] + m.group(2)) if m else name


def _mirrored(rec: MarkerRecording, names: tuple[str, ...]) -> MarkerRecording:
    """Reflected through the x-z plane with left/right markers swapped (a marker without a twin becomes NaN)."""
    held = resample_hold(rec, RATE_HZ)
    pos = {n: i for i, n in enumerate(names)}
    out = np.full_like(held.markers_m, np.nan)
    for i, n in enumerate(names):
        twin = _swap_side(n)
        j = pos.get(twin)
        if j is not None:
            out[:, i] = held.markers_m[:, j]
    out[..., 1] *= -1.0
    return MarkerRecording(rec.name, held.time_s, out, RATE_HZ)


def variant_recording(rec: MarkerRecording, names: tuple[str, ...], variant: str) -> MarkerRecording:
    """The recording of one augmentation in :data:`VARIANTS` (markers in ``names`` order)."""
    if variant == "original":
        return resample_hold(rec, RATE_HZ)
    if variant.startswith("speed_"):
        return _time_mapped(rec, float(variant.split("_")[1]))
    if variant == "warp":
        return _time_mapped(rec, None)
    if variant.startswith("stride_"):
        k = float(variant.split("_")[1])
        held = resample_hold(rec, RATE_HZ)
        first = held.markers_m[0]
        c = np.nanmean(first, axis=0)
        c[2] = 0.0
        return MarkerRecording(rec.name, held.time_s, c + (held.markers_m - c) * k, RATE_HZ)
    if variant == "noise":
        held = resample_hold(rec, RATE_HZ)
        rng = np.random.default_rng(SEED)
        return MarkerRecording(rec.name, held.time_s, held.markers_m + rng.normal(0.0, NOISE_M, held.markers_m.shape),
                               RATE_HZ)
    if variant == "mirror":
        return _mirrored(rec, names)
    raise ValueError(f"variant = {variant!r}: allowed {VARIANTS}")


def trial_variant(trial: SharedTrial, variant: str, cache: dict[tuple[float, str], KinematicsToLoads]) -> dict[str, Any]:
    """Run the chain on one variant of one trial: features (N, F), targets (N, 2) medial, lateral KCF (BW), the
    chain's total (N,) BW, valid (N,), time (N,)."""
    side = trial.side
    height = trial.height_m
    if variant == "mirror":
        side = "right" if side == "left" else "left"
    if variant.startswith("stride_"):
        height = round(height * float(variant.split("_")[1]), 4)
    key = (height, side, trial.markerset)
    if key not in cache:
        cache[key] = KinematicsToLoads.for_subject(trial.markerset, EstimatorParams(trial.mass_kg, height, side,  # type: ignore[arg-type]
                                                                                  rate_hz=RATE_HZ))
    est = cache[key]
    est.reset()
    names = est.marker_names
    rec = variant_recording(load_marker_recording(trial.trc, names), names, variant)
    res = run_offline(est, rec)
    feats = KcfFeatures(side, trial.mass_kg, height, RATE_HZ, est.muscle_names).trial(res)
    bw = trial.mass_kg * STANDARD_GRAVITY_M_S2
    return {"x": feats, "y": res.kcf_n[:, :2] / bw, "total": res.kcf_n[:, 2] / bw, "valid": res.valid,
            "t": res.time_s, "side": side, "height_m": height}


def build(data: Path, cache_path: Path, progress: Any = print) -> dict[str, Any]:
    """Every shared trial x every variant (cached in ``cache_path``, an .npz plus a JSON index)."""
    if cache_path.exists():
        z = np.load(cache_path, allow_pickle=False)
        index = json.loads(cache_path.with_suffix(".json").read_text())
        return {"index": index, "arrays": {k: z[k] for k in z.files}}
    est_cache: dict[tuple[float, str], KinematicsToLoads] = {}
    arrays: dict[str, np.ndarray] = {}
    index = []
    for trial in shared_trials(data):
        if not Path(trial.trc).exists():
            progress(f"skip {trial.name}: {trial.trc} absent")
            continue
        for v in VARIANTS:
            t0 = time.perf_counter()
            r = trial_variant(trial, v, est_cache)
            key = f"{trial.name}__{v}"
            for k in ("x", "y", "total", "valid", "t"):
                arrays[f"{key}__{k}"] = np.asarray(r[k])
            index.append({"key": key, "trial": trial.name, "subject": trial.name.split("_")[0], "variant": v,
                          "side": r["side"], "height_m": r["height_m"], "mass_kg": trial.mass_kg,
                          "frames": int(r["t"].size), "kcf_ref": trial.kcf_ref})
            progress(f"{key}: {r['t'].size} frames, {time.perf_counter() - t0:.1f} s")
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache_path, **arrays)
    cache_path.with_suffix(".json").write_text(json.dumps(index, indent=1))
    return {"index": index, "arrays": arrays}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=Path("build/kcf_dataset.npz"))
    ap.add_argument("--out", type=Path, default=None, help="train into this folder (models/artifacts/)")
    a, rest = ap.parse_known_args(argv)
    build(a.data, a.cache, progress=lambda s: print(s, file=sys.stderr, flush=True))
    if a.out is None:
        return 0
    from models.muscles import kcf_learned_train

    return kcf_learned_train.main(["--data", str(a.cache), "--out", str(a.out)] + rest)


if __name__ == "__main__":
    raise SystemExit(main())
