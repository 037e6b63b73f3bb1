"""Training data of the learned knee contact force estimator (runtime.estimation.kcf_dataset): the augmentations
carry the thorax markers with the limb markers (the live chain's GRF trunk reads them), and the mirror swaps each
marker with its other-side twin whatever the marker set's spelling."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.estimation.chain import MarkerRecording
from runtime.estimation.kcf_dataset import RATE_HZ, VARIANTS, twin_index, variant_recording

NAMES = ("Sacral", "RAsis", "LAsis", "RankleMedial", "LAnkleMedial", "R.Knee.Lateral", "L.Knee.Lateral", "R_HJC",
         "L_HJC", "Lumbar")
TORSO = ("Sternum", "RShoulderBack", "LShoulderBack", "Neck")


def test_twin_index_across_spellings():
    t = twin_index(NAMES)
    assert [NAMES[i] for i in t] == ["Sacral", "LAsis", "RAsis", "LAnkleMedial", "RankleMedial", "L.Knee.Lateral",
                                     "R.Knee.Lateral", "L_HJC", "R_HJC", "Lumbar"]
    assert (t[t] == np.arange(len(NAMES))).all()                         # an involution


def _recording(n: int = 40, rate: float = 100.0) -> MarkerRecording:
    rng = np.random.default_rng(3)
    t = np.arange(n) / rate
    walk = np.array([1.2, 0.0, 0.0]) * t[:, None, None]                  # 1.2 m/s along x
    limb = rng.normal(0.0, 0.2, (1, len(NAMES), 3)) + np.array([0.0, 0.0, 0.9]) + walk
    torso = rng.normal(0.0, 0.1, (1, len(TORSO), 3)) + np.array([0.0, 0.0, 1.4]) + walk
    return MarkerRecording("synthetic", t, limb, rate, None, torso, rng.normal(0.0, 0.1, (len(TORSO), 3)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_carries_the_torso_markers(variant):
    rec = _recording()
    v = variant_recording(rec, NAMES, variant, TORSO)
    assert v.rate_hz == RATE_HZ and v.torso_markers_m is not None
    assert v.torso_markers_m.shape == (v.time_s.size, len(TORSO), 3)
    np.testing.assert_array_equal(v.torso_offsets_m, rec.torso_offsets_m)
    assert np.isfinite(v.torso_markers_m).all() and np.isfinite(v.markers_m).all()
    # the trunk stays above the pelvis by the same height in every variant (up to the stride scaling and noise)
    rise = np.mean(v.torso_markers_m[..., 2]) - np.mean(v.markers_m[..., 2])
    k = float(variant.split("_")[1]) if variant.startswith("stride_") else 1.0
    expect = np.mean(rec.torso_markers_m[..., 2]) - np.mean(rec.markers_m[..., 2])
    assert rise == pytest.approx(expect * k, abs=0.01)


def test_time_maps_and_mirror_move_torso_and_limb_alike():
    rec = _recording()
    slow = variant_recording(rec, NAMES, "speed_0.85", TORSO)
    # 1.2 m/s slowed by 0.85: both marker sets travel 1.02 m/s
    for m in (slow.markers_m, slow.torso_markers_m):
        v = (m[-1, :, 0] - m[0, :, 0]) / (slow.time_s[-1] - slow.time_s[0])
        np.testing.assert_allclose(v, 1.2 * 0.85, rtol=0.02)
    held = variant_recording(rec, NAMES, "original", TORSO)
    mir = variant_recording(rec, NAMES, "mirror", TORSO)
    t = twin_index(NAMES)
    np.testing.assert_array_equal(mir.markers_m[..., 1], -held.markers_m[:, t, 1])
    np.testing.assert_array_equal(mir.markers_m[..., [0, 2]], held.markers_m[:, t][..., [0, 2]])
    tt = twin_index(TORSO)
    assert [TORSO[i] for i in tt] == ["Sternum", "LShoulderBack", "RShoulderBack", "Neck"]
    np.testing.assert_array_equal(mir.torso_markers_m[..., 1], -held.torso_markers_m[:, tt, 1])


def test_unknown_variant_named():
    with pytest.raises(ValueError, match="variant"):
        variant_recording(_recording(), NAMES, "upside_down", TORSO)


def test_ridge_recovers_a_linear_map_and_leaves_the_bias_unpenalised():
    from models.muscles.kcf_ridge import ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    W0, b0 = rng.normal(size=(5, 2)), np.array([3.0, -2.0])
    W, b = ridge(X, X @ W0 + b0, 0.0)
    np.testing.assert_allclose(W, W0, atol=1e-10)
    np.testing.assert_allclose(b, b0, atol=1e-10)
    W, b = ridge(X, X @ W0 + b0, 1e9)                                  # all shrunk: the mean remains
    assert np.abs(W).max() < 1e-5
    np.testing.assert_allclose(b, (X @ W0 + b0).mean(axis=0), atol=1e-4)
    with pytest.raises(ValueError, match="lam"):
        ridge(X, X @ W0, -1.0)
    with pytest.raises(ValueError, match="X"):
        ridge(X[:, 0], X @ W0, 1.0)


def test_leave_one_trial_out_penalty():
    from models.muscles.kcf_ridge import choose_lambda

    rng = np.random.default_rng(1)
    W0 = rng.normal(size=(30, 1))
    groups, X, Y, scored = [], [], [], []
    for g in range(4):
        for orig in (True, False):
            x = rng.normal(size=(25, 30))
            groups.append(f"t{g}")
            X.append(x)
            scored.append(orig)
            Y.append(x @ W0)
    lam, cv = choose_lambda(groups, X, Y, scored)                      # noiseless: the least penalty wins
    assert lam == 1e-3 and cv["0.001"] == min(cv.values())
    # only noise, few frames per feature: a larger penalty predicts the held-out trial better
    Yn = [rng.normal(size=(x.shape[0], 1)) for x in X]
    lam_n, _ = choose_lambda(groups, X, Yn, scored)
    assert lam_n == 10.0
    with pytest.raises(ValueError, match="group"):
        choose_lambda(["a", "a"], X[:2], Y[:2], scored[:2])
