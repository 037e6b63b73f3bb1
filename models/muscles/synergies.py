"""Muscle synergies: non-negative matrix factorisation of static-optimisation activations, and synergy-constrained
static optimisation.

Synergies
---------
Muscle activations ``V`` (m muscles x n samples, >= 0) are factorised ``V ~ W H`` with ``W`` (m, k) >= 0 the
synergy vectors (unit-norm columns: the muscle weightings) and ``H`` (k, n) >= 0 their time-varying activation
coefficients (Lee & Seung 1999, Nature 401:788; for muscle synergies Tresch, Saltiel & Bizzi 1999, Nat Neurosci
2:162; Ting & Macpherson 2005, J Neurophysiol 93:609).  Goodness of fit is the *uncentred* variance accounted for

    VAF = 1 - ||V - W H||_F^2 / ||V||_F^2

(Torres-Oviedo, Macpherson & Ting 2006, J Neurophysiol 96:1530; Clark et al. 2010, J Neurophysiol 103:844 used
the same criterion for walking, VAF >= 0.90, and found 4-5 synergies in healthy walking from EMG).

:func:`nmf` uses hierarchical alternating least squares (HALS; Cichocki & Phan 2009, IEICE Trans Fundam
E92-A:708), which converges much faster than Lee-Seung multiplicative updates, from several random starts
(deterministic given ``seed``), keeping the factorisation with the smallest residual.

The activation profiles come from our own static optimisation (:mod:`models.muscles.static_optimization`, MyoLeg, minimum
sum of squared activations) on the shared walking trials (:func:`build_from_shared_trials`): one leg per trial
(the analysed side), pooled across subjects by side-less muscle names (``soleus_l`` -> ``soleus``).  These are
model activations, not EMG: the minimum-effort criterion makes them sparse and tends to give fewer, cleaner
synergies than EMG would.

Synergy-constrained static optimisation
---------------------------------------
:func:`solve_synergy_constrained` solves the same per-frame torque-tracking problem as the static optimisation
(``C``, ``b``, ``P`` of :meth:`models.muscles.static_optimization.StaticOptimization.problem`) with the activations
restricted to the synergy cone ``a = W c``::

    minimise  |W c|^2 + s' diag(P) s    s.t.   C W c + s = b,   c >= 0,   W c <= 1

Eliminating ``s = b - C W c`` gives a bounded linear least-squares problem in ``c`` (k unknowns), solved with
``scipy.optimize.lsq_linear`` (BVLS) under ``c >= 0``; where that solution has some ``W c > 1`` the problem is
re-solved exactly with the general constraint ``W c <= 1`` (Lawson & Hanson's LSI -> LDP -> NNLS reduction).  Both legs get their own coefficients
(:func:`block_synergy_matrix`).

This module is pure computation (numpy, scipy; the builder reads the shared data through ``models/``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = [
    "nmf",
    "vaf",
    "SynergySet",
    "extract_synergies",
    "vaf_table",
    "choose_k",
    "side_less",
    "leg_activations",
    "build_from_shared_trials",
    "save_synergies",
    "load_synergies",
    "block_synergy_matrix",
    "SynergySolution",
    "solve_synergy_constrained",
    "compare_on_trial",
    "synergy_activations",
    "ARTIFACT_PATH",
    "VAF_THRESHOLD",
]

ARTIFACT_PATH = Path(__file__).resolve().parents[1] / "artifacts" / "synergies_myoleg_v2.npz"
VAF_THRESHOLD = 0.90
_EPS = 1e-12


# --------------------------------------------------------------------------------------------------
# NMF
# --------------------------------------------------------------------------------------------------


def vaf(V: np.ndarray, W: np.ndarray, H: np.ndarray) -> float:
    """Uncentred variance accounted for, ``1 - ||V - W H||^2 / ||V||^2`` (Torres-Oviedo et al. 2006)."""
    V = np.asarray(V, dtype=float)
    den = float(np.sum(V * V))
    if den == 0.0:
        return 1.0 if not np.any(np.asarray(W) @ np.asarray(H)) else -np.inf
    R = V - np.asarray(W, dtype=float) @ np.asarray(H, dtype=float)
    return 1.0 - float(np.sum(R * R)) / den


def _hals(V: np.ndarray, W: np.ndarray, H: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """HALS updates in place until the relative decrease of ||V - WH||^2 falls below ``tol``."""
    k = W.shape[1]
    vv = float(np.sum(V * V))
    prev = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        # W step
        VHt = V @ H.T
        HHt = H @ H.T
        for j in range(k):
            hjj = HHt[j, j]
            if hjj <= _EPS:
                continue
            W[:, j] = np.maximum(_EPS, W[:, j] + (VHt[:, j] - W @ HHt[:, j]) / hjj)
        # H step
        WtV = W.T @ V
        WtW = W.T @ W
        for j in range(k):
            wjj = WtW[j, j]
            if wjj <= _EPS:
                continue
            H[j] = np.maximum(0.0, H[j] + (WtV[j] - WtW[j] @ H) / wjj)
        # ||V - WH||^2 = ||V||^2 - 2 tr(H' W'V) + tr(W'W H H')  (cheap: reuse WtV, WtW)
        err = vv - 2.0 * float(np.sum(WtV * H)) + float(np.sum(WtW * (H @ H.T)))
        if prev - err <= tol * max(prev, _EPS) and it > 1:
            break
        prev = err
    return W, H, it


def nmf(V: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 2000, tol: float = 1e-9,
        restarts: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative factorisation ``V (m, n) ~ W (m, k) @ H (k, n)``; HALS from ``restarts`` random starts.

    Deterministic given ``seed``.  Returns the best (smallest residual) factorisation with the columns of ``W``
    scaled to unit Euclidean norm (``H`` rescaled so ``W H`` is unchanged) and ordered by decreasing
    contribution ``||H_j||``.  ``tol``: relative decrease of the squared residual that ends a start.
    """
    V = np.asarray(V, dtype=float)
    if V.ndim != 2:
        raise ValueError(f"V must be 2-D (m, n), got shape {V.shape}")
    if not np.all(np.isfinite(V)):
        raise ValueError("V must be finite")
    if np.any(V < 0):
        raise ValueError(f"V must be non-negative (min {V.min():.3g})")
    m, n = V.shape
    if int(k) != k or not (1 <= k <= min(m, n)):
        raise ValueError(f"k = {k!r}: allowed 1..{min(m, n)}")
    if restarts < 1:
        raise ValueError("restarts must be >= 1")
    k = int(k)
    rng = np.random.default_rng(seed)
    scale = np.sqrt(max(float(V.mean()), _EPS) / k)
    best = None
    for _ in range(restarts):
        W = rng.uniform(0.0, 1.0, (m, k)) * scale * 2.0 + _EPS
        H = rng.uniform(0.0, 1.0, (k, n)) * scale * 2.0
        W, H, _ = _hals(V, W, H, max_iter, tol)
        R = V - W @ H
        e = float(np.sum(R * R))
        if best is None or e < best[0]:
            best = (e, W.copy(), H.copy())
    _, W, H = best
    norms = np.linalg.norm(W, axis=0)
    norms[norms <= 0] = 1.0
    W = W / norms
    H = H * norms[:, None]
    order = np.argsort(-np.linalg.norm(H, axis=1), kind="stable")
    return W[:, order], H[order]


# --------------------------------------------------------------------------------------------------
# synergy sets
# --------------------------------------------------------------------------------------------------


@dataclass
class SynergySet:
    """``W`` (m, k) unit-norm columns over ``muscle_names`` (side-less names when pooled); ``vaf`` on the data
    it came from; ``H`` (k, n) the pooled activation coefficients (not saved in the artifact)."""

    W: np.ndarray
    muscle_names: tuple[str, ...]
    k: int
    vaf: float
    provenance: dict[str, Any] = field(default_factory=dict)
    H: np.ndarray | None = None


def _stack(activation_trials: Sequence[np.ndarray]) -> np.ndarray:
    mats = []
    for i, a in enumerate(activation_trials):
        a = np.asarray(a, dtype=float)
        if a.ndim != 2:
            raise ValueError(f"trial {i}: activation must be (N, m), got {a.shape}")
        a = a[np.all(np.isfinite(a), axis=1)]          # frames the solver flagged (NaN) are dropped
        mats.append(np.clip(a, 0.0, None))
    if not mats or len({m.shape[1] for m in mats}) != 1:
        raise ValueError("activation_trials: need >= 1 trial, all with the same muscles (columns)")
    return np.concatenate(mats, axis=0).T          # (m, sum N)


def extract_synergies(activation_trials: Sequence[np.ndarray], k: int, *, muscle_names: Sequence[str] | None = None,
                      seed: int = 0, restarts: int = 10, max_iter: int = 2000, tol: float = 1e-9) -> SynergySet:
    """Pool the trials' activations (each (N_i, m), frames stacked) and extract ``k`` synergies by :func:`nmf`."""
    V = _stack(activation_trials)
    W, H = nmf(V, k, seed=seed, restarts=restarts, max_iter=max_iter, tol=tol)
    names = tuple(muscle_names) if muscle_names is not None else tuple(f"m{i}" for i in range(V.shape[0]))
    if len(names) != V.shape[0]:
        raise ValueError(f"{len(names)} muscle names for {V.shape[0]} muscles")
    prov = {"n_samples": int(V.shape[1]), "n_trials": len(activation_trials), "seed": seed, "restarts": restarts,
            "algorithm": "HALS NMF (Cichocki & Phan 2009), best of restarts", "vaf_definition":
            "uncentred, 1 - ||V-WH||^2/||V||^2 (Torres-Oviedo et al. 2006)", "normalisation": "none (activations)"}
    return SynergySet(W=W, muscle_names=names, k=int(k), vaf=vaf(V, W, H), provenance=prov, H=H)


def vaf_table(activation_trials: Sequence[np.ndarray], ks: Sequence[int] = tuple(range(1, 11)), *, seed: int = 0,
              restarts: int = 10) -> dict[int, float]:
    """``{k: VAF}`` of the best ``k``-synergy factorisation of the pooled activations."""
    V = _stack(activation_trials)
    out = {}
    for k in ks:
        W, H = nmf(V, k, seed=seed, restarts=restarts)
        out[int(k)] = vaf(V, W, H)
    return out


def choose_k(table: dict[int, float], threshold: float = VAF_THRESHOLD) -> int:
    """Smallest ``k`` with ``VAF >= threshold`` (the largest ``k`` in the table when none reaches it)."""
    for k in sorted(table):
        if table[k] >= threshold:
            return k
    return max(table)


# --------------------------------------------------------------------------------------------------
# activations of one leg, side-less names
# --------------------------------------------------------------------------------------------------


def side_less(name: str) -> str:
    """``soleus_l`` -> ``soleus`` (MyoLeg: every muscle ends in ``_l`` or ``_r``)."""
    if name.endswith(("_l", "_r")):
        return name[:-2]
    raise ValueError(f"muscle {name!r} has no _l/_r suffix")


def leg_activations(activation: np.ndarray, muscle_names: Sequence[str], side: str,
                    order: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Columns of one leg (``side`` 'left'/'right' or 'l'/'r'), renamed side-less, in ``order`` (default sorted)."""
    s = "_" + side[0].lower()
    idx = {side_less(n): i for i, n in enumerate(muscle_names) if n.endswith(s)}
    if not idx:
        raise ValueError(f"no muscle ends in {s!r}")
    names = tuple(order) if order is not None else tuple(sorted(idx))
    missing = [n for n in names if n not in idx]
    if missing:
        raise KeyError(f"muscles missing on side {side!r}: {missing[:8]}")
    return np.asarray(activation, dtype=float)[:, [idx[n] for n in names]], names


def block_synergy_matrix(W: np.ndarray, synergy_muscles: Sequence[str], model_muscles: Sequence[str],
                         sides: Sequence[str] = ("r", "l")) -> np.ndarray:
    """Expand a side-less ``W`` (m, k) to the model's muscles: (n_model_muscles, k * len(sides)), one block of
    ``k`` synergies per leg (independent coefficients per leg).  Model muscles not in ``synergy_muscles`` get a
    zero row (they are off in the synergy-constrained problem)."""
    W = np.asarray(W, dtype=float)
    pos = {n: i for i, n in enumerate(synergy_muscles)}
    k = W.shape[1]
    out = np.zeros((len(model_muscles), k * len(sides)))
    for b, s in enumerate(sides):
        suf = "_" + s
        for r, n in enumerate(model_muscles):
            if n.endswith(suf) and side_less(n) in pos:
                out[r, b * k:(b + 1) * k] = W[pos[side_less(n)]]
    return out


# --------------------------------------------------------------------------------------------------
# builder and artifact
# --------------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for p in ("numpy", "scipy", "mujoco", "numba"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "absent"
    try:
        root = Path(__file__).resolve().parents[2]
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                           timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = "unknown"
    return out


def trial_activations(trial, *, return_analysis: bool = False):
    """Static optimisation (measured plates) on one ``models.io.shared_trials.SharedTrial``-like record
    (``trc``, ``markerset``, ``grf``, ``mass_kg``, ``height_m``, ``side``, ``name``) -> its leg's activations."""
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    params = AnalyzeParams(trial.mass_kg, trial.height_m, trial.side, muscles=True)
    kin = trial_kinematics(trial.trc, trial.markerset, params)
    res = analyze_trial(trial.trc, trial.markerset, params, grf_path=trial.grf, kin=kin)
    act, names = leg_activations(res.muscles.activation, res.muscles.muscle_names, trial.side)
    if return_analysis:
        return act, names, res, kin
    return act, names


def _shared_trials(data_dir: Path):
    from models.io.shared_trials import shared_trials

    return [t for t in shared_trials(Path(data_dir)) if Path(t.trc).exists() and t.grf and Path(t.grf).exists()]


def build_from_shared_trials(data_dir: str | Path | None = None, *, ks: Sequence[int] = tuple(range(1, 11)),
                             threshold: float = VAF_THRESHOLD, seed: int = 0, restarts: int = 10,
                             trials: Sequence[Any] | None = None, progress=None) -> tuple[SynergySet, dict[int, float]]:
    """Static optimisation on the shared walking trials (plates; the analysed leg of each), pooled by side-less
    muscle names -> (the synergy set at the smallest ``k`` with VAF >= ``threshold``, ``{k: VAF}``)."""
    from models.io.lab_files import shared_data_dir

    data_dir = Path(data_dir) if data_dir is not None else shared_data_dir()
    trials = list(trials) if trials is not None else _shared_trials(data_dir)
    if not trials:
        raise FileNotFoundError(f"no shared trials with force plates under {data_dir}")
    acts, names, used = [], None, []
    t0 = time.perf_counter()
    for t in trials:
        a, n = trial_activations(t)
        if names is None:
            names = n
        elif n != names:
            a, _ = a, None
            raise ValueError(f"{t.name}: muscle set differs from the first trial's")
        acts.append(a)
        used.append({"name": t.name, "trc": Path(t.trc).name, "grf": Path(t.grf).name, "side": t.side,
                     "mass_kg": t.mass_kg, "height_m": t.height_m, "frames": int(a.shape[0])})
        if progress:
            progress(f"{t.name}: {a.shape[0]} frames")
    table = vaf_table(acts, ks, seed=seed, restarts=restarts)
    k = choose_k(table, threshold)
    syn = extract_synergies(acts, k, muscle_names=names, seed=seed, restarts=restarts)
    syn.provenance.update({
        "trials": used, "data_dir": str(data_dir), "k": k, "vaf": syn.vaf, "vaf_threshold": threshold,
        "vaf_table": {str(kk): v for kk, v in table.items()},
        "activation_source": "models.muscles.static_optimization (MyoLeg, SOParams() defaults: min sum a^2 + reserves "
                             "w=1, 1 N m), measured force plates, analysed leg only, side-less names",
        "software": _versions(), "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build_time_s": round(time.perf_counter() - t0, 2)})
    return syn, table


def save_synergies(syn: SynergySet, path: str | Path = ARTIFACT_PATH, *, extra_W: dict[int, np.ndarray] | None = None
                   ) -> tuple[Path, Path]:
    """``W``, muscle names, k, VAF and the provenance (JSON string) to ``.npz``; the provenance also to a sidecar
    ``.json``.  ``extra_W``: other ``k``'s synergy matrices (saved as ``W_k{k}``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prov = json.dumps(syn.provenance, indent=2, default=str)
    arrays = {"W": syn.W, "muscle_names": np.array(syn.muscle_names), "k": np.array(syn.k),
              "vaf": np.array(syn.vaf), "provenance_json": np.array(prov)}
    for kk, Wk in (extra_W or {}).items():
        arrays[f"W_k{kk}"] = np.asarray(Wk)
    np.savez_compressed(path, **arrays)
    side = path.with_suffix(".json")
    side.write_text(prov + "\n")
    return path, side


def load_synergies(path: str | Path = ARTIFACT_PATH) -> SynergySet:
    with np.load(Path(path), allow_pickle=False) as z:
        return SynergySet(W=np.array(z["W"]), muscle_names=tuple(str(s) for s in z["muscle_names"]), k=int(z["k"]),
                          vaf=float(z["vaf"]), provenance=json.loads(str(z["provenance_json"])))


# --------------------------------------------------------------------------------------------------
# synergy-constrained static optimisation
# --------------------------------------------------------------------------------------------------


def _lsi_ldp(M: np.ndarray, y: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, bool]:
    """``min |M c - y|`` s.t. ``c >= 0``, ``W c <= 1`` (M full column rank) via LDP + NNLS; (c, ok)."""
    from scipy.optimize import nnls

    k = M.shape[1]
    Q, R = np.linalg.qr(M)
    d = np.abs(np.diag(R))
    if d.min() <= 1e-12 * max(d.max(), 1e-300):
        return np.zeros(k), False
    Rinv = np.linalg.solve(R, np.eye(k))
    qy = Q.T @ y
    G = np.vstack([np.eye(k), -W])
    h = np.concatenate([np.zeros(k), -np.ones(W.shape[0])])
    E = G @ Rinv
    f = h - E @ qy                                   # E z >= f
    A = np.vstack([E.T, f[None, :]])
    rhs = np.zeros(k + 1)
    rhs[-1] = 1.0
    try:
        u, _ = nnls(A, rhs, maxiter=50 * A.shape[1])
    except RuntimeError:
        return np.zeros(k), False
    r = A @ u - rhs
    if abs(r[-1]) < 1e-14:                           # infeasible (cannot happen: c = 0 is feasible)
        return np.zeros(k), False
    z = -r[:k] / r[-1]
    c = Rinv @ (z + qy)
    ok = bool(np.all(c >= -1e-9) and np.max(W @ c) <= 1.0 + 1e-7)
    return np.maximum(c, 0.0), ok


@dataclass
class SynergySolution:
    """``c`` (k,) synergy coefficients >= 0, ``a = W c`` (m,) in [0, 1], reserves ``s = b - C a`` (n,),
    ``cost = a'a + s'Ps``, ``method`` ('lsq_linear', 'ldp_nnls', or 'slsqp' if that failed), ``success``, ``time_s``."""

    c: np.ndarray
    activation: np.ndarray
    reserve: np.ndarray
    cost: float
    method: str
    success: bool
    time_s: float


def solve_synergy_constrained(C: np.ndarray, b: np.ndarray, P: np.ndarray, W: np.ndarray, *, c0: np.ndarray | None = None,
                              tol: float = 1e-12, max_iter: int = 500) -> SynergySolution:
    """``min |W c|^2 + s' diag(P) s``  s.t.  ``C W c + s = b``, ``c >= 0``, ``0 <= W c <= 1``.

    ``C`` (n, m), ``b`` (n,), ``P`` (n,) > 0 as in :class:`models.muscles.static_optimization.SOProblem`; ``W`` (m, k) >= 0.
    With ``s`` eliminated the objective is ``|M c - y|^2``, ``M = [W; sqrt(P) C W]``, ``y = [0; sqrt(P) b]``:
    ``lsq_linear`` (BVLS) with ``c >= 0`` first; only if ``max(W c) > 1`` the exact LSI solution with ``W c <= 1``
    (Lawson-Hanson: least distance programming by NNLS); SLSQP only if ``M`` is rank deficient.
    (``W >= 0`` and ``c >= 0`` give ``W c >= 0``.)
    """
    from scipy.optimize import lsq_linear, minimize

    t0 = time.perf_counter()
    C = np.asarray(C, dtype=float)
    b = np.asarray(b, dtype=float).ravel()
    P = np.asarray(P, dtype=float).ravel()
    W = np.asarray(W, dtype=float)
    n, m = C.shape
    if W.shape[0] != m or b.size != n or P.size != n:
        raise ValueError(f"shapes: C {C.shape}, b {b.shape}, P {P.shape}, W {W.shape}")
    if np.any(W < 0) or not np.all(P > 0):
        raise ValueError("W must be >= 0 and P > 0")
    k = W.shape[1]
    active = np.any(W > 0, axis=0)           # synergies with no muscle have no effect: fixed at 0
    Wa = W[:, active]
    sp = np.sqrt(P)
    M = np.vstack([Wa, sp[:, None] * (C @ Wa)])
    y = np.concatenate([np.zeros(m), sp * b])
    c = np.zeros(k)
    ca = np.zeros(Wa.shape[1])
    method, success = "lsq_linear", True
    if Wa.shape[1]:
        r = lsq_linear(M, y, bounds=(0.0, np.inf), method="bvls", tol=tol, max_iter=max_iter)
        ca = np.maximum(r.x, 0.0)
        success = bool(r.success)
        if np.max(Wa @ ca) > 1.0 + 1e-9:
            # the upper bound binds: exact solution of the inequality-constrained least squares (LSI) by
            # Lawson & Hanson's reduction to least distance programming and NNLS (Solving Least Squares
            # Problems, 1974, ch. 23): M = QR, z = R c - Q'y, constraints G c >= h with G = [I; -W], h = [0; -1]
            method = "ldp_nnls"
            ca, success = _lsi_ldp(M, y, Wa)
            if not success:                                      # rank-deficient M: SLSQP, warm-started
                method = "slsqp"
                x0 = np.maximum(r.x, 0.0)
                x0 = x0 / max(1.0, float(np.max(Wa @ x0)))      # feasible start
                if c0 is not None:
                    x0 = np.asarray(c0, dtype=float)[active]
                MtM, Mty = M.T @ M, M.T @ y
                yy = float(y @ y)
                res = minimize(lambda x: float(x @ MtM @ x - 2 * Mty @ x + yy), x0,
                               jac=lambda x: 2 * (MtM @ x - Mty), method="SLSQP",
                               bounds=[(0.0, None)] * Wa.shape[1],
                               constraints=[{"type": "ineq", "fun": lambda x: 1.0 - Wa @ x, "jac": lambda x: -Wa}],
                               options={"ftol": 1e-14, "maxiter": max_iter})
                ca = np.maximum(res.x, 0.0)
                success = bool(res.success)
            mx = float(np.max(Wa @ ca))
            if mx > 1.0:                                        # round-off: scale back into the box
                ca = ca / mx
    c[active] = ca
    a = np.clip(W @ c, 0.0, 1.0)
    s = b - C @ a
    cost = float(a @ a + s @ (P * s))
    return SynergySolution(c=c, activation=a, reserve=s, cost=cost, method=method, success=success,
                           time_s=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------------
# comparison on a trial
# --------------------------------------------------------------------------------------------------

QUADRICEPS = ("recfem", "vasint", "vaslat", "vasmed")
HAMSTRINGS = ("bflh", "bfsh", "semimem", "semiten")


def _smoothness(a: np.ndarray) -> float:
    """RMS over muscles and frames of the second difference of activation (per frame^2)."""
    d2 = np.diff(a, n=2, axis=0)
    return float(np.sqrt(np.mean(d2 ** 2))) if d2.size else float("nan")


def _coactivation(a: np.ndarray, names: Sequence[str], side: str) -> float:
    """Mean over frames of min(mean quadriceps activation, mean hamstrings activation) of one leg."""
    s = "_" + side[0]
    q = [i for i, n in enumerate(names) if n.endswith(s) and side_less(n) in QUADRICEPS]
    h = [i for i, n in enumerate(names) if n.endswith(s) and side_less(n) in HAMSTRINGS]
    if not q or not h:
        return float("nan")
    return float(np.mean(np.minimum(a[:, q].mean(axis=1), a[:, h].mean(axis=1))))


def synergy_activations(so, qpos: np.ndarray, qvel: np.ndarray, tau: np.ndarray, W_block: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Synergy-constrained activations of a whole trial on ``so`` (a :class:`~models.muscles.static_optimization.
    StaticOptimization`)'s per-frame problems: activations (N, n_muscles), reserves (N, n_solved) (N m), cost (N,),
    per-frame solve time (N,) (s) and the method used per frame.  ``W_block``: :func:`block_synergy_matrix`."""
    n = tau.shape[0]
    act = np.full((n, so.n_muscles), np.nan)
    resv = np.full((n, so.solved_index.size), np.nan)
    cost, times, methods = np.full(n, np.nan), np.zeros(n), []
    for i in range(n):
        pr = so.problem(qpos[i], qvel[i], tau[i])
        sol = solve_synergy_constrained(pr.C, pr.b, pr.reserve_penalty, W_block)
        act[i], resv[i], cost[i], times[i] = sol.activation, sol.reserve, sol.cost, sol.time_s
        methods.append(sol.method)
    return act, resv, cost, times, methods


def compare_on_trial(trial, syn: SynergySet) -> dict[str, Any]:
    """Unconstrained SO vs synergy-constrained SO on the same per-frame problems of one trial (plates)."""
    from models.muscles.static_optimization import SOParams, StaticOptimization

    _, _, res, kin = trial_activations(trial, return_analysis=True)
    so_trial = res.muscles
    so = StaticOptimization(kin.model, SOParams())
    Wb = block_synergy_matrix(syn.W, syn.muscle_names, so.muscle_names)
    mk = kin.mapped
    tau = res.moments_nm
    n = tau.shape[0]
    act, resv, cost, times, methods = synergy_activations(so, mk.qpos, mk.qvel, tau, Wb)
    solved = tuple(so.coordinate_names[j] for j in so.solved_index)
    s = "_" + trial.side[0]
    rows = {}
    for j, cname in enumerate(solved):
        if not cname.endswith(s):
            continue
        kso = so_trial.coordinate_names.index(cname)
        rows[cname] = {"so_reserve_rms_nm": float(np.sqrt(np.mean(so_trial.reserve_nm[:, kso] ** 2))),
                       "syn_reserve_rms_nm": float(np.sqrt(np.mean(resv[:, j] ** 2))),
                       "tau_rms_nm": float(np.sqrt(np.mean(tau[:, so.coordinate_names.index(cname)] ** 2)))}
    leg = [i for i, nm in enumerate(so.muscle_names) if nm.endswith(s)]
    return {
        "trial": trial.name, "frames": n, "k_per_leg": syn.k, "reserve_rms_nm": rows,
        "smoothness_rms_d2": {"so": _smoothness(so_trial.activation[:, leg]), "syn": _smoothness(act[:, leg])},
        "coactivation_quad_ham": {"so": _coactivation(so_trial.activation, so.muscle_names, trial.side),
                                  "syn": _coactivation(act, so.muscle_names, trial.side)},
        "cost_mean": {"so": float(np.mean(so_trial.cost)), "syn": float(np.mean(cost))},
        "per_frame_time_ms": {"so_median": float(np.median(so_trial.step_time_s) * 1e3),
                              "syn_median": float(np.median(times) * 1e3), "syn_max": float(np.max(times) * 1e3)},
        "upper_bound_frames": int(sum(m != "lsq_linear" for m in methods)),
        "slsqp_frames": int(sum(m == "slsqp" for m in methods)),
        "sum_activation_mean": {"so": float(np.mean(so_trial.activation[:, leg].sum(1))),
                                "syn": float(np.mean(act[:, leg].sum(1)))},
    }


def _print_comparison(cmp: dict[str, Any]) -> None:
    print(f"\n{cmp['trial']}: {cmp['frames']} frames, k = {cmp['k_per_leg']} synergies per leg, "
          f"W c <= 1 active on {cmp['upper_bound_frames']} frames (SLSQP fallback {cmp['slsqp_frames']})")
    print(f"{'coordinate':<20}{'tau RMS':>10}{'SO res RMS':>12}{'syn res RMS':>13}   (N m)")
    for c, r in cmp["reserve_rms_nm"].items():
        print(f"{c:<20}{r['tau_rms_nm']:>10.2f}{r['so_reserve_rms_nm']:>12.3f}{r['syn_reserve_rms_nm']:>13.3f}")
    for key, label in (("smoothness_rms_d2", "activation 2nd-diff RMS"), ("coactivation_quad_ham",
                                                                           "quad-ham co-activation"),
                       ("cost_mean", "mean cost a'a+s'Ps"), ("sum_activation_mean", "mean sum of activations")):
        print(f"{label:<28} SO {cmp[key]['so']:.4f}   synergy {cmp[key]['syn']:.4f}")
    t = cmp["per_frame_time_ms"]
    print(f"per-frame time (ms)          SO {t['so_median']:.3f}   synergy median {t['syn_median']:.3f} "
          f"max {t['syn_max']:.3f}")


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - offline builder
    """Build the artifact from the shared trials and print the VAF table and the PS ss1 comparison."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(ARTIFACT_PATH))
    ap.add_argument("--compare", default="PS_ss1")
    args = ap.parse_args(argv)
    syn, table = build_from_shared_trials(args.data, progress=print)
    print("k   VAF")
    for k, v in table.items():
        print(f"{k:<3} {v:.4f}")
    print(f"chosen k = {syn.k} (VAF {syn.vaf:.4f} >= {VAF_THRESHOLD})")
    from models.io.lab_files import shared_data_dir

    # W for every k, same data (for later choices without a rebuild)
    acts = None
    extra = {}
    try:
        trials = _shared_trials(Path(args.data) if args.data else shared_data_dir())
        acts = [trial_activations(t)[0] for t in trials]
        for k in table:
            extra[k] = extract_synergies(acts, k, muscle_names=syn.muscle_names).W
    except Exception as exc:  # noqa: BLE001 - the extra matrices are optional
        print(f"extra W not saved: {exc}")
    paths = save_synergies(syn, args.out, extra_W=extra)
    print("saved", *paths)
    if args.compare:
        tr = [t for t in _shared_trials(Path(args.data) if args.data else shared_data_dir()) if t.name == args.compare]
        if tr:
            _print_comparison(compare_on_trial(tr[0], syn))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
