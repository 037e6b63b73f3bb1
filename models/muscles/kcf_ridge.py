"""The linear part of the learned knee contact force estimator: a ridge regression of the network's two outputs (the
axial contact force in BW and the frontal contact moment over BW times the half spacing,
``models.muscles.kcf_learned.OUTPUTS``) on one frame's normalised features, its penalty chosen by leave-one-trial-out cross-validation on the training
trials only (pure numpy; ``models.muscles.kcf_learned_train`` freezes it into the network's skip layer).

The chain's contact force is nearly linear in what the features carry (muscle tensions and the tibia's
intersegmental reaction, ``models.muscles.kcf_features``), so a linear map fitted in closed form carries to a
subject not trained on; the recurrent network learns only what it leaves over.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: Candidate penalties (normalised features, summed squared error over frames).
LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def ridge(X: np.ndarray, Y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """min ||X W + b - Y||^2 + lam ||W||^2 (the bias unpenalised): X (n, F), Y (n, k) -> W (F, k), b (k,)."""
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"ridge: X {X.shape} and Y {Y.shape} must be (n, F) and (n, k) with n > 0")
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam = {lam!r}: must be a finite number >= 0")
    xm, ym = X.mean(axis=0), Y.mean(axis=0)
    Xc = X - xm
    W = np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ (Y - ym))
    return W, ym - xm @ W


def choose_lambda(groups: Sequence[str], X: Sequence[np.ndarray], Y: Sequence[np.ndarray],
                  scored: Sequence[bool], lambdas: Sequence[float] = LAMBDAS) -> tuple[float, dict[str, float]]:
    """The penalty of least leave-one-group-out mean squared error: for each group (a trial, all its
    augmentations), fitted on the other groups' blocks, scored on its own blocks marked ``scored`` (the original
    recording). Blocks: ``X[i]`` (n_i, F), ``Y[i]`` (n_i, k) of group ``groups[i]``. Returns it and the CV MSE per
    candidate."""
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError(f"choose_lambda: {len(names)} group(s); leave-one-out needs at least 2")
    cv: dict[str, float] = {}
    for lam in lambdas:
        err = []
        for g in names:
            fit = [i for i, h in enumerate(groups) if h != g]
            test = [i for i, h in enumerate(groups) if h == g and scored[i]]
            if not test:
                continue
            W, b = ridge(np.concatenate([X[i] for i in fit]), np.concatenate([Y[i] for i in fit]), lam)
            e = np.concatenate([X[i] @ W + b - Y[i] for i in test])
            err.append(float(np.mean(e ** 2)))
        cv[f"{lam:g}"] = float(np.mean(err))
    best = min(lambdas, key=lambda v: cv[f"{v:g}"])
    return float(best), cv
