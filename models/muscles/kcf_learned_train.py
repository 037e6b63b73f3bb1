"""Train, score and export the learned knee contact force estimator (CNN -> BiGRU -> self-attention -> linear).

Training-time only (imports torch; ``pip install -e .[train]``). The data are the physics chain's features and
contact forces over every shared trial and its augmentations, built by ``runtime.estimation.kcf_dataset``
(which also runs this module: ``python -m runtime.estimation.kcf_dataset --out models/artifacts/``); given the
cached data, ``python -m models.muscles.kcf_learned_train --data build/kcf_dataset_v3.npz --out models/artifacts/``.
The targets are the two quantities of the chain's medial / lateral split that do not depend on the subject's
contact points (``models.muscles.kcf_learned.OUTPUTS``): the axial force ``F_ax`` (BW) and ``m = M_f / (BW h)``,
recovered exactly from the chain's medial and lateral at that recording's ``(d_m, d_l)``; the scores split the
predictions back at the same points and compare medial and lateral.

Network, on a window of ``WINDOW`` frames (1/60 s apart) of normalised features (``models.muscles.kcf_features``):
two causal temporal convolutions (kernel 5, 32 channels, ReLU) -> a bidirectional GRU (32 per direction) over the
window -> one-head scaled dot-product self-attention over the window (residual, layer norm) -> a linear head per
frame giving ``F_ax`` (BW) and ``m``, plus a linear map of the same frame's features (the skip: a ridge
regression fitted in closed form first, its penalty by leave-one-trial-out CV on the training trials,
``models.muscles.kcf_ridge``, then frozen; the chain's contact force is nearly linear in the muscle tensions and
tibia reaction the features carry, so this part carries to the other subject, where the recurrent part trained
end to end alone extrapolated poorly); the recurrent part is trained on what the skip leaves over. Live (causal):
the window ends at the newest frame and its last output is used, so the output lags the chain's own features by
0 frames (the backward GRU sees only the window's past).
Offline (whole trial): every frame is the centre of its window (``OFFLINE_AHEAD`` frames of look-ahead,
edge-padded at the trial's ends). The loss is the mean squared error over every frame of the window plus the
last frame's again, on the frames the chain marked valid.

Scored by subject: trained on one subject's trials (all variants), scored on the other's original trials
(R^2 = coefficient of determination and RMSE against the chain, and against the eTibia implant for PS); the
shipped model is trained on both subjects with the same settings. Fixed seed; deterministic on the CPU.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.muscles.kcf_features import FEATURE_NAMES, N_FEATURES, normalise
from models.muscles.kcf_ridge import choose_lambda, ridge
from models.muscles.kcf_learned import (ARTIFACT_STEM, LAG_FRAMES, OFFLINE_AHEAD, OPSET, OUTPUTS, WINDOW,
                                        causal_windows, centred_windows, split)

SEED = 0
EPOCHS = 24
BATCH = 128
LR = 3e-3
#: Windows drawn per epoch, as a fraction of all training windows (a fresh random subset each epoch).
EPOCH_FRACTION = 0.5
#: AdamW's decoupled weight decay (all parameters).
WEIGHT_DECAY = 0.01
CHANNELS = 32
HIDDEN = 32


class KcfNet(nn.Module):
    """(B, WINDOW, F) normalised features -> (B, WINDOW, 2) ``F_ax`` (BW), ``m = M_f / (BW h)`` (``OUTPUTS``)."""

    def __init__(self, n_features: int = N_FEATURES, channels: int = CHANNELS, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.k = 5
        self.conv1 = nn.Conv1d(n_features, channels, self.k)
        self.conv2 = nn.Conv1d(channels, channels, self.k)
        self.gru = nn.GRU(channels, hidden, batch_first=True, bidirectional=True)
        self.attn = nn.MultiheadAttention(2 * hidden, 1, batch_first=True)
        self.norm = nn.LayerNorm(2 * hidden)
        self.head = nn.Linear(2 * hidden, 2)
        self.skip = nn.Linear(n_features, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        h = torch.relu(self.conv1(nn.functional.pad(h, (self.k - 1, 0))))      # causal: left padding only
        h = torch.relu(self.conv2(nn.functional.pad(h, (self.k - 1, 0))))
        g, _ = self.gru(h.transpose(1, 2))
        a, _ = self.attn(g, g, g, need_weights=False)
        return self.head(self.norm(g + a)) + self.skip(x)


def _trial_arrays(ds: Any, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (N, F), the invariant targets (N, 2) and the frames to learn from (valid, finite targets)."""
    a = ds["arrays"]
    return a[f"{key}__x"], a[f"{key}__y"], a[f"{key}__valid"].astype(bool) & np.isfinite(a[f"{key}__y"]).all(axis=1)


def _windows(ds: Any, keys: list[str], mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, ...]:
    """Causal windows ending at every frame: X (n, W, F), Y (n, W, 2) (NaN -> 0), mask (n, W) (valid, real)."""
    xs, ys, ms = [], [], []
    for k in keys:
        x, y, v = _trial_arrays(ds, k)
        z = normalise(x, mean, std)
        xs.append(causal_windows(z))
        yy = np.where(np.isfinite(y), y, 0.0)
        ys.append(causal_windows(yy))
        idx = np.arange(x.shape[0])[:, None] - (WINDOW - 1) + np.arange(WINDOW)[None, :]
        ms.append((idx >= 0) & v[np.clip(idx, 0, None)])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ms)


def fit_skip(net: KcfNet, ds: Any, keys: list[str], mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """The network's linear skip set to the ridge regression of the targets on one frame's normalised features
    (``models.muscles.kcf_ridge``: penalty by leave-one-trial-out CV over ``keys``' trials) and frozen. Returns the
    penalty and the CV errors (for the model card)."""
    entry = {e["key"]: e for e in ds["index"]}
    groups, X, Y, scored = [], [], [], []
    for k in keys:
        x, y, v = _trial_arrays(ds, k)
        groups.append(entry[k]["trial"])
        X.append(normalise(x[v], mean, std))
        Y.append(y[v])
        scored.append(entry[k]["variant"] == "original")
    lam, cv = choose_lambda(groups, X, Y, scored)
    W, b = ridge(np.concatenate(X), np.concatenate(Y), lam)
    with torch.no_grad():
        net.skip.weight.copy_(torch.tensor(W.T, dtype=torch.float32))
        net.skip.bias.copy_(torch.tensor(b, dtype=torch.float32))
    net.skip.requires_grad_(False)
    return {"lambda": lam, "cv_mse_bw2": cv}


def train(ds: Any, keys: list[str], epochs: int = EPOCHS, log: Any = print) -> tuple[KcfNet, np.ndarray, np.ndarray]:
    """A network trained on the trials ``keys``: the frozen ridge skip (:func:`fit_skip`, its choice in
    ``net.ridge_info``), then the recurrent part on what it leaves over. Returns it and the feature mean / std."""
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    allx = np.concatenate([_trial_arrays(ds, k)[0] for k in keys])
    mean = np.nanmean(allx, axis=0)
    std = np.nanstd(allx, axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    X, Y, M = (torch.tensor(a, dtype=torch.float32) for a in _windows(ds, keys, mean, std))
    net = KcfNet()
    net.ridge_info = fit_skip(net, ds, keys, mean, std)
    log(f"  ridge skip: lambda {net.ridge_info['lambda']:g} (leave-one-trial-out CV)", flush=True)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    n = X.shape[0]
    for ep in range(epochs):
        perm = torch.tensor(rng.permutation(n)[: int(n * EPOCH_FRACTION)])
        tot = 0.0
        net.train()
        for b in range(0, len(perm), BATCH):
            i = perm[b:b + BATCH]
            pred = net(X[i])
            m = M[i]
            err = ((pred - Y[i]) ** 2).sum(-1) * m
            loss = err.sum() / m.sum().clamp(min=1) + err[:, -1].sum() / m[:, -1].sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(i)
        sched.step()
        if ep % 6 == 0 or ep == epochs - 1:
            log(f"  epoch {ep}: loss {tot / len(perm):.4f}", flush=True)
    net.eval()
    return net, mean, std


def predict(net: KcfNet, x: np.ndarray, mean: np.ndarray, std: np.ndarray, offline: bool = False) -> np.ndarray:
    """(N, 2) ``F_ax`` (BW), ``m`` over a trial: causal (last frame of trailing windows) or offline (centred)."""
    z = normalise(x, mean, std)
    w = centred_windows(z) if offline else causal_windows(z)
    pos = WINDOW - 1 - OFFLINE_AHEAD if offline else WINDOW - 1 - LAG_FRAMES
    with torch.no_grad():
        return net(torch.tensor(w, dtype=torch.float32)).numpy()[:, pos].astype(float)


def _r2_rmse(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(pred) & np.isfinite(ref)
    e = pred[ok] - ref[ok]
    ss = float(np.sum((ref[ok] - ref[ok].mean()) ** 2))
    return {"r2": 1.0 - float(np.sum(e ** 2)) / ss, "rmse_bw": float(np.sqrt(np.mean(e ** 2))), "frames": int(ok.sum())}


def _vs_implant(t: np.ndarray, ml_bw: np.ndarray, path: str, mass_kg: float) -> dict[str, float]:
    """RMSE (BW) of medial, lateral, medial + lateral against the implant's 101 points (as
    ``models.muscles.knee_contact.validate_against_in_vivo``: 0 % first frame, 100 % last)."""
    from models.muscles.knee_contact import read_in_vivo

    ref = read_in_vivo(path)
    bw = mass_kg * 9.80665
    pct = (t - t[0]) / (t[-1] - t[0]) * 100.0
    g = ref["gait_cycle_pct"]
    out = {}
    for name, ours, col in (("medial", ml_bw[:, 0], "F_medial"), ("lateral", ml_bw[:, 1], "F_lateral"),
                            ("medial_plus_lateral", ml_bw.sum(1), None)):
        r = (ref[col] if col else ref["F_medial"] + ref["F_lateral"]) / bw
        ok = np.isfinite(ours)
        o = np.interp(g, pct[ok], ours[ok])
        out[f"{name}_rmse_bw"] = float(np.sqrt(np.mean((o - r) ** 2)))
    return out


def score(net: KcfNet, ds: Any, keys: list[str], mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """Per held-out trial and pooled: R^2 / RMSE (BW) of the learned medial and lateral (the outputs split at the
    recording's contact points) against the chain's (causal and offline), of the two outputs themselves against
    their targets (``invariant``), and against the implant where there is one (next to the chain's own error)."""
    per, pooled = {}, {"causal": ([], [], [], []), "offline": ([], [], [], [])}
    for k in keys:
        x, yi, v = _trial_arrays(ds, k)
        y = ds["arrays"][f"{k}__ml"]
        entry = next(e for e in ds["index"] if e["key"] == k)
        row: dict[str, Any] = {}
        for mode in ("causal", "offline"):
            pi = predict(net, x, mean, std, offline=mode == "offline")
            p = np.stack(split(pi[:, 0], pi[:, 1], entry["condyle_offsets_m"]), axis=1)
            for acc, a in zip(pooled[mode], (p[v], y[v], pi[v], yi[v])):
                acc.append(a)
            row[mode] = {side: _r2_rmse(p[v, j], y[v, j]) for j, side in enumerate(("medial", "lateral"))}
            row[mode]["invariant"] = {o: _r2_rmse(pi[v, j], yi[v, j]) for j, o in enumerate(OUTPUTS)}
            if entry.get("kcf_ref"):
                t = ds["arrays"][f"{k}__t"]
                row[mode]["implant"] = _vs_implant(t, np.where(v[:, None], p, np.nan), entry["kcf_ref"], entry["mass_kg"])
        if entry.get("kcf_ref"):
            t = ds["arrays"][f"{k}__t"]
            row["chain_vs_implant"] = _vs_implant(t, np.where(v[:, None], y, np.nan), entry["kcf_ref"], entry["mass_kg"])
        per[k] = row
    out: dict[str, Any] = {"trials": per}
    for mode, (p, y, pi, yi) in pooled.items():
        P, Y, PI, YI = (np.concatenate(a) for a in (p, y, pi, yi))
        out[f"pooled_{mode}"] = {side: _r2_rmse(P[:, j], Y[:, j]) for j, side in enumerate(("medial", "lateral"))}
        out[f"pooled_{mode}"]["invariant"] = {o: _r2_rmse(PI[:, j], YI[:, j]) for j, o in enumerate(OUTPUTS)}
    return out


def export(net: KcfNet, path: Path) -> np.ndarray:
    """ONNX (opset :data:`OPSET`, input ``features`` fixed (1, WINDOW, F) float32, output ``kcf_bw`` (1, WINDOW, 2):
    ``F_ax`` (BW), ``m``);
    checked against PyTorch on a seeded input within 1e-4. Returns that input."""
    import onnxruntime as ort

    x = torch.tensor(np.random.default_rng(SEED).normal(size=(1, WINDOW, N_FEATURES)), dtype=torch.float32)
    torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=OPSET, input_names=["features"],
                      output_names=["kcf_bw"])
    with torch.no_grad():
        ref = net(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"features": x.numpy()})[0]
    err = float(np.max(np.abs(got - ref)))
    if err > 1e-4:
        raise RuntimeError(f"ONNX export differs from PyTorch by {err:.2e} (> 1e-4)")
    return x.numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="runtime.estimation.kcf_dataset's cache (.npz)")
    ap.add_argument("--out", type=Path, required=True, help="folder of the artefact (models/artifacts/)")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)       # one thread: on a loaded 2-core CPU two threads were 25x slower
    torch.use_deterministic_algorithms(True)
    t_start = time.perf_counter()
    z = np.load(a.data, allow_pickle=False)
    ds = {"index": json.loads(a.data.with_suffix(".json").read_text()), "arrays": {k: z[k] for k in z.files}}
    idx = ds["index"]
    subjects = sorted({e["subject"] for e in idx})
    folds = {}
    for held in subjects:
        tr = [e["key"] for e in idx if e["subject"] != held]
        te = [e["key"] for e in idx if e["subject"] == held and e["variant"] == "original"]
        print(f"fold: train {sorted({e['subject'] for e in idx} - {held})}, score {held} ({len(tr)} train recordings)")
        net, mean, std = train(ds, tr, a.epochs)
        folds[f"held_out_{held}"] = score(net, ds, te, mean, std)
        folds[f"held_out_{held}"]["ridge_skip"] = net.ridge_info
        print(json.dumps({k: v for k, v in folds[f"held_out_{held}"].items() if k.startswith("pooled")}))
    print("final: all subjects")
    net, mean, std = train(ds, [e["key"] for e in idx], a.epochs)
    a.out.mkdir(parents=True, exist_ok=True)
    onnx_path = a.out / f"{ARTIFACT_STEM}.onnx"
    x_check = export(net, onnx_path)
    import onnxruntime as ort

    y_check = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"features": x_check})[0]
    card = {
        "artifact": onnx_path.name,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "bytes": onnx_path.stat().st_size,
        "network": {"layers": ["causal Conv1d(F, 32, 5) + ReLU", "causal Conv1d(32, 32, 5) + ReLU",
                               "bidirectional GRU(32) over the window", "1-head self-attention (64) + residual + LayerNorm",
                               "Linear(64, 2) per frame",
                               "+ Linear(F, 2) per frame on the same frame's features (skip: ridge regression, "
                               "penalty by leave-one-trial-out CV on the training trials, frozen; "
                               f"lambda {net.ridge_info['lambda']:g})"],
                    "input": {"name": "features", "shape": [1, WINDOW, N_FEATURES], "dtype": "float32",
                              "meaning": "normalised features of the last WINDOW frames at 60 Hz, oldest first"},
                    "output": {"name": "kcf_bw", "shape": [1, WINDOW, 2], "names": list(OUTPUTS),
                               "meaning": "per frame: the axial tibiofemoral contact force F_ax (BW, compressive "
                                          "positive) and the frontal-plane contact moment about the tibia origin over "
                                          "body weight times the contact points' half spacing, m = M_f / (BW h) "
                                          "(dimensionless, positive loads the medial compartment; with symmetric "
                                          "points m = medial - lateral in BW). Neither depends on where the "
                                          "subject's contact points sit"},
                    "split": {"source": "models.muscles.kcf_learned.split, at run time with the subject's contact "
                                        "points (the chain's KinematicsToLoads.condyles: models.muscles."
                                        "condyle_geometry.CondyleGeometry.offsets_m = (d_m, d_l), d_m = h + c, "
                                        "d_l = h - c about the epicondyle midpoint)",
                              "formula": "h = (d_m + d_l) / 2, M_f = m BW h, F_med = (F_ax d_l + M_f) / (d_m + d_l), "
                                         "F_lat = F_ax - F_med (Winby 2009; models.muscles.knee_contact."
                                         "medial_lateral_split)",
                              "targets": "F_ax = F_med + F_lat, M_f / BW = F_med (d_m + d_l) - F_ax d_l from the "
                                         "chain's medial / lateral and that recording's (d_m, d_l)"},
                    "opset": OPSET, "window_frames": WINDOW, "rate_hz": 60.0,
                    "causal": {"output_frame": WINDOW - 1 - LAG_FRAMES, "lag_frames": LAG_FRAMES,
                               "lag_s": LAG_FRAMES / 60.0,
                               "note": "lag behind the chain's own features (which lag the markers by the chain's lag_s); "
                                       "the first WINDOW-1 frames of a recording are edge-padded with the first frame"},
                    "offline": {"output_frame": WINDOW - 1 - OFFLINE_AHEAD, "look_ahead_frames": OFFLINE_AHEAD}},
        "features": {"names": list(FEATURE_NAMES), "source": "models.muscles.kcf_features.KcfFeatures",
                     "normalisation": "z = (x - mean) / std (training set, all frames); a non-finite feature -> 0",
                     "mean": mean.tolist(), "std": std.tolist()},
        "data": {"trials": sorted({e["trial"] for e in idx}), "recordings": len(idx),
                 "frames": int(sum(e["frames"] for e in idx)), "rate_hz": 60.0,
                 "source": "runtime.estimation.kcf_dataset: KinematicsToLoads.for_subject stepped frame by frame (as "
                           "live) on the shared trials' limb and thorax markers (models.io.shared_trials; the GRF "
                           "trunk on), kinematics-only GRF; features with the frame's SO muscle tensions and the "
                           "tibia's ID reaction; targets F_ax and m from the chain's medial and lateral KCF / body "
                           "weight and the recording's contact points (each index entry's condyle_offsets_m), on "
                           "frames it marked valid",
                 "built_from": {k: idx[0].get(k) for k in ("commit", "modified")},
                 "torso_markers": sorted({e["trial"] for e in idx if e.get("torso_markers")}),
                 "condyles": {e["key"]: {"offsets_m": e["condyle_offsets_m"], "source": e["condyle_source"]}
                              for e in idx if e["variant"] in ("original", "mirror")},
                 "augmentation": {"all": "applied to the limb and the thorax markers alike",
                                  "speed_0.85/1.15": "uniform time scaling, markers linearly interpolated",
                                  "warp": "non-uniform time warp, local speed 1 +- 0.2 (one sine period per trial)",
                                  "stride_0.94/1.06": "marker cloud scaled about its first-frame ground point, height "
                                                      "alike (the model, so the half spacing h, scales with it)",
                                  "noise": "3 mm Gaussian on every marker coordinate (seed 0)",
                                  "mirror": "y -> -y, left/right twins swapped (names compared without case, dots, "
                                            "underscores), the other knee (its own contact points)"}},
        "scoring": "by subject: trained on all variants of one subject, scored on the other's original trials; the "
                 "shipped network is trained on both subjects; medial and lateral scored after the split at the held-out "
                   "recording's contact points",
        "training": {"seed": SEED, "epochs": a.epochs, "batch": BATCH,
                     "optimiser": f"AdamW lr {LR}, weight decay {WEIGHT_DECAY}, cosine (all but the frozen skip)",
                     "ridge_skip": net.ridge_info,
                     "windows_per_epoch": f"random {EPOCH_FRACTION:g} of all",
                     "loss": "MSE over the window's valid frames + MSE of the last frame", "torch": torch.__version__,
                     "seconds": None},
        "metrics": folds,
        "check": {"input_seed": SEED, "input": "numpy default_rng(0).normal(size=(1, WINDOW, F)) as float32",
                  "output": y_check.reshape(-1).tolist()},
    }
    card["training"]["seconds"] = round(time.perf_counter() - t_start, 1)
    (a.out / f"{ARTIFACT_STEM}.json").write_text(json.dumps(card, indent=1))
    print(f"wrote {onnx_path} ({card['bytes']} B) and its card in {card['training']['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
