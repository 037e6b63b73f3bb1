"""Training data of the learned knee contact force estimator: the physics chain over every shared trial and
over augmented versions of it (``models.muscles.kcf_learned_train`` trains on the result).

Each variant is a new marker recording at 60 Hz, the thorax markers included (``load_marker_recording(...,
torso=est.torso)``, as the live chain's GRF trunk reads them), that the same chain
(``KinematicsToLoads.for_subject``, stepped frame by frame as the live loop does: :func:`run_with_features`)
turns into per-frame features (``models.muscles.kcf_features``, with the frame's muscle tensions and tibia
reaction) and targets: the chain's medial and lateral KCF (BW, ``ml``) and, from them and that variant's contact
points (the estimator's ``condyles``: ``offsets_m`` = ``(d_m, d_l)``, ``half_spacing_m`` h, recorded in the index),
the network's geometry-invariant targets (``y``, :func:`targets`): the axial force ``F_ax = F_med + F_lat`` (BW)
and ``m = M_f / (BW h)``, ``M_f = F_med (d_m + d_l) - F_ax d_l`` (``models.muscles.kcf_learned``). The mirror
variant runs the other knee, so its contact points are that knee's; the stride variants scale the model, and h with
the tibia. The augmentations (:data:`VARIANTS`), each applied
to the limb and the thorax markers alike before the chain:

- ``original``: the recording held to 60 Hz (``resample_hold``), what the live loop sees;
- ``speed_0.85`` / ``speed_1.15``: uniform time scaling (slower / faster walking), markers linearly interpolated;
- ``warp``: a smooth non-uniform time warp, local speed 1 +- 0.2 (one sine period over the trial);
- ``stride_0.94`` / ``stride_1.06``: the marker cloud scaled about its first-frame ground point (stride length
  and body size together), the subject's height scaled alike, mass unchanged;
- ``noise``: 3 mm Gaussian noise on every marker coordinate (seeded);
- ``mirror``: reflected through a vertical plane (y -> -y), left and right twins swapped (:func:`twin_index`, names
  compared without case, dots and underscores), the other knee.

Run: ``python -m runtime.estimation.kcf_dataset --out models/artifacts/`` builds the data (cached in ``--cache``)
and trains (the one command that rebuilds the artefact); each entry of the cache's index names the commit the chain
ran from (:func:`source_commit`).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.io.shared_trials import SharedTrial, shared_trials
from models.muscles.kcf_features import N_FEATURES, STANDARD_GRAVITY_M_S2, KcfFeatures
from models.muscles.kcf_learned import invariant_targets
from runtime.estimation.chain import (EstimatorParams, KinematicsToLoads, MarkerRecording, check_torso_input,
                                      load_marker_recording, resample_hold)

RATE_HZ = 60.0
VARIANTS = ("original", "speed_0.85", "speed_1.15", "warp", "stride_0.94", "stride_1.06", "noise", "mirror")
NOISE_M = 0.003
SEED = 0
#: The cache of the data (and its JSON index), one per artefact version (v3: the invariant targets, the condyles).
CACHE = Path("build/kcf_dataset_v3.npz")


def _interp(time_s: np.ndarray, markers_m: np.ndarray, t_src: np.ndarray) -> np.ndarray:
    """Markers (len(t_src), M, 3) linearly interpolated at source times ``t_src`` (NaN if a neighbour is NaN)."""
    i1 = np.clip(np.searchsorted(time_s, t_src, side="right"), 1, time_s.size - 1)
    i0 = i1 - 1
    w = ((t_src - time_s[i0]) / (time_s[i1] - time_s[i0]))[:, None, None]
    return markers_m[i0] * (1.0 - w) + markers_m[i1] * w


def _with(rec: MarkerRecording, time_s: np.ndarray, markers_m: np.ndarray,
          torso_m: np.ndarray | None) -> MarkerRecording:
    """A 60 Hz recording of ``rec``'s name and torso offsets with new times and markers (torso ones too)."""
    return MarkerRecording(rec.name, time_s, markers_m, RATE_HZ, None,
                           None if rec.torso_markers_m is None else torso_m,
                           None if rec.torso_markers_m is None else rec.torso_offsets_m)


def _time_mapped(rec: MarkerRecording, speed: float | None) -> MarkerRecording:
    """At ``RATE_HZ``: uniform speed factor ``speed``, or (None) the sine warp of local speed 1 +- 0.2; the torso
    markers are mapped alike."""
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
    torso = None if rec.torso_markers_m is None else _interp(rec.time_s, rec.torso_markers_m, src)
    return _with(rec, t0 + u, _interp(rec.time_s, rec.markers_m, src), torso)


def _side_key(name: str) -> str:
    """A marker name without case, dots and underscores ('R.Ankle.Medial', 'RankleMedial' -> 'ranklemedial')."""
    return re.sub(r"[._]", "", name).lower()


def twin_index(names: tuple[str, ...]) -> np.ndarray:
    """For each marker, the index of its other-side twin (the name's leading L/R swapped, compared without case,
    dots and underscores: 'RankleMedial' <-> 'LAnkleMedial'); itself when it has none (unsided: 'Sacral')."""
    pos = {_side_key(n): i for i, n in enumerate(names)}
    out = np.arange(len(names))
    for i, n in enumerate(names):
        k = _side_key(n)
        if k[:1] in ("l", "r"):
            j = pos.get({"l": "r", "r": "l"}[k[0]] + k[1:])
            if j is not None:
                out[i] = j
    return out


def _mirror_markers(m: np.ndarray, twins: np.ndarray) -> np.ndarray:
    out = m[:, twins].copy()
    out[..., 1] *= -1.0
    return out


def _mirrored(rec: MarkerRecording, names: tuple[str, ...], torso_names: tuple[str, ...]) -> MarkerRecording:
    """Reflected through the x-z plane (y -> -y) with left/right twins swapped (:func:`twin_index`), torso too."""
    held = resample_hold(rec, RATE_HZ)
    torso = None if held.torso_markers_m is None else _mirror_markers(held.torso_markers_m, twin_index(torso_names))
    return _with(held, held.time_s, _mirror_markers(held.markers_m, twin_index(names)), torso)


def variant_recording(rec: MarkerRecording, names: tuple[str, ...], variant: str,
                      torso_names: tuple[str, ...] = ()) -> MarkerRecording:
    """The recording of one augmentation in :data:`VARIANTS` (markers in ``names`` order, the torso markers in
    ``torso_names`` order, both transformed alike)."""
    if variant == "original":
        return resample_hold(rec, RATE_HZ)
    if variant.startswith("speed_"):
        return _time_mapped(rec, float(variant.split("_")[1]))
    if variant == "warp":
        return _time_mapped(rec, None)
    held = resample_hold(rec, RATE_HZ)
    tm = held.torso_markers_m
    if variant.startswith("stride_"):
        k = float(variant.split("_")[1])
        c = np.nanmean(held.markers_m[0], axis=0)
        c[2] = 0.0
        return _with(held, held.time_s, c + (held.markers_m - c) * k, None if tm is None else c + (tm - c) * k)
    if variant == "noise":
        rng = np.random.default_rng(SEED)
        noisy = held.markers_m + rng.normal(0.0, NOISE_M, held.markers_m.shape)
        return _with(held, held.time_s, noisy, None if tm is None else tm + rng.normal(0.0, NOISE_M, tm.shape))
    if variant == "mirror":
        return _mirrored(rec, names, torso_names)
    raise ValueError(f"variant = {variant!r}: allowed {VARIANTS}")


def run_with_features(est: KinematicsToLoads, rec: MarkerRecording, feats: KcfFeatures) -> dict[str, np.ndarray]:
    """The chain over ``rec`` frame by frame as the live loop runs it, with the learned estimator's features of
    each frame: ``x`` (N, F), ``kcf_n`` (N, 3) the chain's medial, lateral, total, ``valid`` (N,), ``t`` (N,)."""
    torso = check_torso_input(est, rec)
    est.reset()
    feats.reset()
    n = rec.time_s.size
    x, kcf, valid = np.empty((n, N_FEATURES)), np.empty((n, 3)), np.zeros(n, bool)
    so, jm = est._so_out, est._jm             # the chain's muscle tensions and tibia reaction, current after step
    for i in range(n):
        f = est.step(rec.markers_m[i], float(rec.time_s[i]), torso_m=None if torso is None else torso[i])
        x[i] = feats.step(f, so.muscle_force_n, jm.reaction_force_n[0], jm.reaction_moment_nm[0])
        kcf[i] = f.kcf_n
        valid[i] = f.valid
    return {"x": x, "kcf_n": kcf, "valid": valid, "t": rec.time_s.copy()}


def targets(kcf_n: np.ndarray, mass_kg: float, condyles: Any) -> dict[str, np.ndarray]:
    """The chain's (N, 3) medial, lateral, total KCF (N) of a subject of ``mass_kg`` with contact points
    ``condyles`` (its ``CondyleGeometry``) -> ``ml`` (N, 2) medial, lateral (BW) and ``y`` (N, 2) the network's
    targets ``F_ax`` (BW), ``m = M_f / (BW h)`` (``models.muscles.kcf_learned.invariant_targets``)."""
    ml = np.asarray(kcf_n, dtype=float)[:, :2] / (mass_kg * STANDARD_GRAVITY_M_S2)
    return {"ml": ml, "y": np.stack(invariant_targets(ml[:, 0], ml[:, 1], condyles), axis=1)}


def trial_variant(trial: SharedTrial, variant: str, cache: dict[tuple[Any, ...], KinematicsToLoads]) -> dict[str, Any]:
    """Run the chain on one variant of one trial (torso markers included): features (N, F), targets (N, 2)
    axial (BW) and normalised frontal moment (:func:`targets`), the chain's medial, lateral (N, 2) and total (N,)
    BW, valid (N,), time (N,), and the estimator's contact points (``condyles``)."""
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
    names = est.marker_names
    torso_names = () if est.torso is None else est.torso.names
    rec = variant_recording(load_marker_recording(trial.trc, names, torso=est.torso), names, variant, torso_names)
    res = run_with_features(est, rec, KcfFeatures(side, trial.mass_kg, height, RATE_HZ, est.muscle_names))
    bw = trial.mass_kg * STANDARD_GRAVITY_M_S2
    return {"x": res["x"], **targets(res["kcf_n"], trial.mass_kg, est.condyles), "total": res["kcf_n"][:, 2] / bw,
            "valid": res["valid"], "t": res["t"], "side": side, "height_m": height,
            "torso": rec.torso_markers_m is not None, "condyles": est.condyles}


def source_commit() -> dict[str, Any]:
    """``git rev-parse HEAD`` of the checkout the chain runs from and the tracked files under ``models/`` and
    ``runtime/`` that differ from it when the data were built (the targets are the chain's outputs at build time);
    ``{"commit": "unknown"}`` outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--name-only", "HEAD", "--", "models", "runtime"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown"}
    return {"commit": head, "modified": dirty}


def build(data: Path, cache_path: Path, progress: Any = print) -> dict[str, Any]:
    """Every shared trial x every variant (cached in ``cache_path``, an .npz plus a JSON index)."""
    if cache_path.exists():
        z = np.load(cache_path, allow_pickle=False)
        index = json.loads(cache_path.with_suffix(".json").read_text())
        return {"index": index, "arrays": {k: z[k] for k in z.files}}
    est_cache: dict[tuple[Any, ...], KinematicsToLoads] = {}
    arrays: dict[str, np.ndarray] = {}
    index = []
    commit = source_commit()
    for trial in shared_trials(data):
        if not Path(trial.trc).exists():
            progress(f"skip {trial.name}: {trial.trc} absent")
            continue
        for v in VARIANTS:
            t0 = time.perf_counter()
            r = trial_variant(trial, v, est_cache)
            key = f"{trial.name}__{v}"
            for k in ("x", "y", "ml", "total", "valid", "t"):
                arrays[f"{key}__{k}"] = np.asarray(r[k])
            index.append({"key": key, "trial": trial.name, "subject": trial.name.split("_")[0], "variant": v,
                          "side": r["side"], "height_m": r["height_m"], "mass_kg": trial.mass_kg,
                          "frames": int(r["t"].size), "kcf_ref": trial.kcf_ref, "torso_markers": r["torso"],
                          "condyle_offsets_m": [float(v) for v in r["condyles"].offsets_m],
                          "half_spacing_m": float(r["condyles"].half_spacing_m),
                          "condyle_centre_m": float(r["condyles"].centre_m), "condyle_source": r["condyles"].source,
                          **commit})
            progress(f"{key}: {r['t'].size} frames, {time.perf_counter() - t0:.1f} s")
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache_path, **arrays)
    cache_path.with_suffix(".json").write_text(json.dumps(index, indent=1))
    return {"index": index, "arrays": arrays}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--out", type=Path, default=None, help="train into this folder (models/artifacts/)")
    a, rest = ap.parse_known_args(argv)
    build(a.data, a.cache, progress=lambda s: print(s, file=sys.stderr, flush=True))
    if a.out is None:
        return 0
    from models.muscles import kcf_learned_train

    return kcf_learned_train.main(["--data", str(a.cache), "--out", str(a.out)] + rest)


if __name__ == "__main__":
    raise SystemExit(main())
