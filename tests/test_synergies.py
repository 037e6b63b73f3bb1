"""Muscle synergies (models.muscles.synergies): NMF, VAF, the artifact, synergy-constrained static optimisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from models.muscles.synergies import (ARTIFACT_PATH, block_synergy_matrix, choose_k, extract_synergies, load_synergies, nmf,
                              side_less, solve_synergy_constrained, vaf)


def _planted(seed=1, m=16, k=4, n=400):
    rng = np.random.default_rng(seed)
    W = rng.uniform(0.0, 1.0, (m, k))
    W[rng.uniform(size=W.shape) < 0.5] = 0.0
    for j in range(k):                       # each synergy has a muscle of its own: the factorisation is unique
        W[j, :] = 0.0
        W[j, j] = 1.0
    H = rng.uniform(0.0, 1.0, (k, n))
    H[rng.uniform(size=H.shape) < 0.3] = 0.0
    for j in range(k):
        H[:, j] = 0.0
        H[j, j] = 1.0
    return W, H


def test_nmf_recovers_planted_factors():
    W, H = _planted()
    V = W @ H
    We, He = nmf(V, 4, seed=0)
    assert We.shape == (16, 4) and He.shape == (4, 400)
    assert np.all(We >= 0) and np.all(He >= 0)
    np.testing.assert_allclose(np.linalg.norm(We, axis=0), 1.0, rtol=1e-12)
    assert vaf(V, We, He) > 0.999
    Wn = W / np.linalg.norm(W, axis=0)
    cos = Wn.T @ We
    r, c = linear_sum_assignment(-cos)
    assert np.all(cos[r, c] > 0.99), cos[r, c]
    # H up to the same permutation and scale (W columns unit norm on both sides)
    Hn = H * np.linalg.norm(W, axis=0)[:, None]
    for i, j in zip(r, c):
        np.testing.assert_allclose(He[j], Hn[i], atol=0.02 * Hn[i].max())


def test_nmf_deterministic_and_validates():
    W, H = _planted(seed=3)
    V = W @ H + 0.01
    a = nmf(V, 3, seed=7, restarts=3)
    b = nmf(V, 3, seed=7, restarts=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError):
        nmf(-V, 2)
    with pytest.raises(ValueError):
        nmf(V, 0)


def test_vaf_definition():
    rng = np.random.default_rng(0)
    V = rng.uniform(size=(5, 7))
    assert vaf(V, np.zeros((5, 1)), np.zeros((1, 7))) == 0.0
    W, H = rng.uniform(size=(5, 2)), rng.uniform(size=(2, 7))
    assert vaf(W @ H, W, H) == pytest.approx(1.0)
    R = V - W @ H
    assert vaf(V, W, H) == pytest.approx(1 - np.sum(R ** 2) / np.sum(V ** 2))   # uncentred


def test_vaf_monotone_in_k_synthetic_and_choose_k():
    W, H = _planted(seed=5, m=12, k=5, n=300)
    rng = np.random.default_rng(0)
    V = W @ H + 0.05 * rng.uniform(size=(12, 300))
    trials = [V[:, :150].T, V[:, 150:].T]
    vafs = [extract_synergies(trials, k, restarts=4).vaf for k in range(1, 8)]
    assert np.all(np.diff(vafs) >= -1e-9), vafs
    assert choose_k({1: 0.5, 2: 0.89, 3: 0.91, 4: 0.95}) == 3
    assert choose_k({1: 0.5, 2: 0.6}) == 2


def test_block_synergy_matrix_and_names():
    assert side_less("soleus_l") == "soleus"
    W = np.array([[1.0, 0.0], [0.0, 1.0]])
    B = block_synergy_matrix(W, ("a", "b"), ("a_r", "b_r", "x_r", "a_l", "b_l"))
    assert B.shape == (5, 4)
    np.testing.assert_array_equal(B[:2, :2], W)
    np.testing.assert_array_equal(B[3:, 2:], W)
    assert not B[2].any() and not B[:3, 2:].any() and not B[3:, :2].any()


# ----------------------------------------------------------------------- synergy-constrained solve


def _random_problem(seed=0, n=14, m=40, k=5):
    rng = np.random.default_rng(seed)
    C = rng.normal(0.0, 50.0, (n, m)) * (rng.uniform(size=(n, m)) < 0.3)
    W = rng.uniform(0.0, 1.0, (m, k)) * (rng.uniform(size=(m, k)) < 0.4)
    W /= np.linalg.norm(W, axis=0)
    return C, W, rng


def test_synergy_constrained_reproduces_synergy_spanned_torque():
    C, W, rng = _random_problem()
    c_true = rng.uniform(0.0, 1.0, W.shape[1])
    c_true *= 0.8 / np.max(W @ c_true)
    b = C @ (W @ c_true)
    sol = solve_synergy_constrained(C, b, np.full(C.shape[0], 1e8), W)
    assert sol.success
    assert np.all(sol.c >= 0)
    assert np.all(sol.activation >= 0) and np.all(sol.activation <= 1)
    np.testing.assert_allclose(sol.activation, W @ sol.c, atol=1e-12)
    assert np.max(np.abs(sol.reserve)) < 1e-4 * (1 + np.max(np.abs(b)))
    np.testing.assert_allclose(C @ sol.activation + sol.reserve, b, atol=1e-9)


def test_synergy_constrained_upper_bound_binds():
    C, W, rng = _random_problem(seed=2)
    c_big = rng.uniform(0.5, 1.0, W.shape[1])
    c_big *= 3.0 / np.max(W @ c_big)                    # needs activations of 3: infeasible without reserves
    b = C @ (W @ c_big)
    sol = solve_synergy_constrained(C, b, np.ones(C.shape[0]), W)
    assert sol.method == "ldp_nnls"
    assert np.all(sol.c >= 0)
    assert np.all(sol.activation >= 0) and np.max(sol.activation) <= 1.0 + 1e-12
    assert np.max(sol.activation) > 0.999                 # the bound is active
    np.testing.assert_allclose(C @ sol.activation + sol.reserve, b, atol=1e-9)


def test_identity_synergies_equal_static_optimisation_qp():
    """With W = I the synergy problem is the static optimisation QP: same optimum as the stage's solver."""
    from models.muscles.qp_kernels import solve_activation_qp

    C, _, rng = _random_problem(seed=4, n=8, m=20)
    b = rng.normal(0.0, 60.0, 8)
    P = np.ones(8)
    a_so, s_so, *_ = solve_activation_qp(C, b, P)
    sol = solve_synergy_constrained(C, b, P, np.eye(20))
    cost_so = float(a_so @ a_so + s_so @ (P * s_so))
    assert sol.cost == pytest.approx(cost_so, rel=1e-9)
    np.testing.assert_allclose(sol.activation, a_so, atol=1e-8)


# ----------------------------------------------------------------------- artifact and real data


def test_artifact_loads_with_provenance():
    if not ARTIFACT_PATH.exists():
        pytest.skip(f"{ARTIFACT_PATH} not built (python -m models.muscles.synergies)")
    assert ARTIFACT_PATH.stat().st_size < 200_000
    syn = load_synergies()
    assert syn.W.shape == (len(syn.muscle_names), syn.k)
    assert np.all(syn.W >= 0)
    np.testing.assert_allclose(np.linalg.norm(syn.W, axis=0), 1.0, rtol=1e-9)
    prov = syn.provenance
    names = [t["name"] for t in prov["trials"]]
    assert {"PS_ss1", "PS_ss3", "PS_ss8", "DM_og1", "DM_og3", "DM_og4", "DM_og5", "DM_og6"} <= set(names)
    for key in ("software", "date", "k", "vaf", "vaf_table"):
        assert key in prov
    assert prov["k"] == syn.k and syn.vaf >= prov["vaf_threshold"]
    table = [prov["vaf_table"][str(k)] for k in range(1, 11)]
    assert np.all(np.diff(table) > 0)
    assert choose_k({int(k): v for k, v in prov["vaf_table"].items()}) == syn.k
    side = Path(ARTIFACT_PATH).with_suffix(".json")
    assert side.exists()


@pytest.fixture(scope="module")
def ps_ss1():
    from models.io.lab_files import shared_data_dir
    from models.io.shared_trials import shared_trials

    trials = [t for t in shared_trials(shared_data_dir()) if t.name == "PS_ss1"]
    if not trials or not Path(trials[0].trc).exists() or not Path(trials[0].grf).exists():
        pytest.skip("shared data (GC5_PS ss1 with plates) absent: set EXO_SHARED_DATA")
    from models.muscles.synergies import trial_activations

    return trials[0], trial_activations(trials[0], return_analysis=True)


def test_vaf_monotone_in_k_real_data(ps_ss1):
    _, (act, names, _, _) = ps_ss1
    assert act.shape[1] == len(names) == 40
    vafs = [extract_synergies([act], k, muscle_names=names, restarts=4).vaf for k in range(1, 9)]
    assert np.all(np.diff(vafs) > -1e-9), vafs
    assert vafs[-1] > 0.9


def test_synergy_constrained_on_real_frames(ps_ss1):
    """Real per-frame problems (StaticOptimization.problem): a torque generated by a synergy-spanned activation is
    reproduced with near-zero reserves; bounds hold."""
    from models.muscles.static_optimization import SOParams, StaticOptimization

    if not ARTIFACT_PATH.exists():
        pytest.skip("artifact not built")
    trial, (_, _, res, kin) = ps_ss1
    syn = load_synergies()
    so = StaticOptimization(kin.model, SOParams())
    Wb = block_synergy_matrix(syn.W, syn.muscle_names, so.muscle_names)
    assert Wb.shape == (80, 2 * syn.k)
    rng = np.random.default_rng(0)
    for i in (10, 40, 90):
        pr = so.problem(kin.mapped.qpos[i], kin.mapped.qvel[i], res.moments_nm[i])
        c_true = rng.uniform(0.0, 1.0, Wb.shape[1])
        c_true *= 0.7 / np.max(Wb @ c_true)
        # the torque that this activation makes (b = tau - passive part, so b = C a exactly)
        b = pr.C @ (Wb @ c_true)
        sol = solve_synergy_constrained(pr.C, b, np.full(b.size, 1e6), Wb)
        assert np.all(sol.c >= 0) and np.all(sol.activation >= 0) and np.all(sol.activation <= 1)
        assert np.max(np.abs(sol.reserve)) < 1e-3, sol.reserve
        # and the real frame: constraints hold, equality closes with the reserves
        sol = solve_synergy_constrained(pr.C, pr.b, pr.reserve_penalty, Wb)
        assert np.all(sol.c >= 0) and np.all(sol.activation >= 0) and np.all(sol.activation <= 1)
        np.testing.assert_allclose(pr.C @ sol.activation + sol.reserve, pr.b, atol=1e-9)
