"""Single-camera left/right swap repair (models.kinematics.monocular_swaps) on a model-generated walk."""
from __future__ import annotations

import numpy as np
import pytest

from models.body.blazepose import BLAZEPOSE_33
from models.body.registry import load_model
from models.body.scaling import SubjectScale, scale_model
from models.kinematics.monocular_camera import PinholeCamera
from models.kinematics.monocular_model import LandmarkModel
from models.kinematics.monocular_swaps import MIRROR_INDEX, LeftRightRepair, repair_left_right
from models.kinematics.monocular_synthetic import synthetic_walk


@pytest.fixture(scope="module")
def walk():
    lm = LandmarkModel(scale_model(load_model("myoleg"), SubjectScale(75.0, 1.80)).model)
    # a camera 40 deg off the walking line's normal: the two sides are apart in the image, as in pose2sim's cam02
    cam = PinholeCamera.look_at(1400.0, (1920, 1080), np.array([4.5, -5.4, 1.0]), np.array([0.0, 0.0, 0.9]))
    return synthetic_walk(lm, cam, duration_s=2.0, fps=60.0, noise_px=2.0, seed=1)


def test_mirror_index_pairs_every_side_landmark():
    for i, n in enumerate(BLAZEPOSE_33):
        m = BLAZEPOSE_33[MIRROR_INDEX[i]]
        assert m == n.replace("left", "#").replace("right", "left").replace("#", "right")
    assert (MIRROR_INDEX[MIRROR_INDEX] == np.arange(33)).all()


def test_clean_walk_is_left_alone(walk):
    xy, sc, sw = repair_left_right(walk.xy_px, walk.score)
    assert not sw.any()
    np.testing.assert_array_equal(np.nan_to_num(xy), np.nan_to_num(walk.xy_px))


def test_a_run_of_mirrored_frames_is_mirrored_back(walk):
    xy = np.array(walk.xy_px)
    sc = np.array(walk.score)
    bad = np.zeros(xy.shape[0], dtype=bool)
    bad[40:67] = True                                   # 27 frames, as cam02 of the pose2sim demo
    xy[bad] = xy[bad][:, MIRROR_INDEX]
    sc[bad] = sc[bad][:, MIRROR_INDEX]
    fixed, fsc, sw = repair_left_right(xy, sc)
    assert (sw == bad).mean() >= 0.95, np.flatnonzero(sw != bad)
    ok = sw == bad
    np.testing.assert_allclose(np.nan_to_num(fixed[ok]), np.nan_to_num(walk.xy_px[ok]))


def test_majority_keeps_its_labels(walk):
    xy = np.array(walk.xy_px)
    sc = np.array(walk.score)
    n = xy.shape[0]
    bad = np.arange(n) >= n // 2 + 10                   # the later, smaller part mirrored
    xy[bad] = xy[bad][:, MIRROR_INDEX]
    _, _, sw = repair_left_right(xy, sc)
    assert (sw == bad).mean() >= 0.95


def test_bad_input_refused():
    with pytest.raises(ValueError, match="xy must be"):
        repair_left_right(np.zeros((4, 17, 2)), np.zeros((4, 17)))
    with pytest.raises(ValueError, match="ratio"):
        repair_left_right(np.zeros((4, 33, 2)), np.ones((4, 33)), ratio=1.5)


def _mirrored_run(walk, start: int, stop: int):
    xy, sc = np.array(walk.xy_px), np.array(walk.score)
    bad = np.zeros(xy.shape[0], dtype=bool)
    bad[start:stop] = True
    xy[bad] = xy[bad][:, MIRROR_INDEX]
    sc[bad] = sc[bad][:, MIRROR_INDEX]
    return xy, sc, bad


def _causal(xy, sc, **kw):
    rep = LeftRightRepair(**kw)
    out = [rep.step(xy[k], sc[k]) for k in range(xy.shape[0])]
    return np.stack([o[0] for o in out]), np.array([o[2] for o in out]), rep


def test_causal_repair_leaves_a_clean_walk_alone(walk):
    fixed, sw, rep = _causal(walk.xy_px, walk.score)
    assert not sw.any() and rep.swapped_frames == 0
    np.testing.assert_array_equal(np.nan_to_num(fixed), np.nan_to_num(walk.xy_px))


def test_causal_repair_mirrors_a_run_back_from_its_first_frame(walk):
    xy, sc, bad = _mirrored_run(walk, 40, 67)
    fixed, sw, rep = _causal(xy, sc)
    assert (sw == bad).all(), np.flatnonzero(sw != bad)
    assert rep.swapped_frames == bad.sum()
    np.testing.assert_allclose(np.nan_to_num(fixed), np.nan_to_num(walk.xy_px))


def test_causal_repair_gives_up_a_run_longer_than_its_limit(walk):
    xy, sc, bad = _mirrored_run(walk, 40, 100)
    _, sw, _ = _causal(xy, sc, max_mirrored_run=20)
    assert not sw[:40].any()
    assert sw[40:60].all()                     # the first 20 frames of the run are mirrored back
    assert not sw[60:100].any()                # then its labels are taken as the true ones, and kept,
    assert sw[100:].all()                      # so the detector's return to the first labels is a swap


def test_causal_repair_refuses_bad_input():
    with pytest.raises(ValueError, match="ratio"):
        LeftRightRepair(ratio=0.0)
    with pytest.raises(ValueError, match="max_gap_frames"):
        LeftRightRepair(max_gap_frames=0)
    with pytest.raises(ValueError, match="xy must be"):
        LeftRightRepair().step(np.zeros((17, 2)), np.ones(17))


def test_live_fitter_reports_the_frames_it_mirrored_back(walk):
    from models.kinematics.monocular_fit import MonocularFitter

    lm = LandmarkModel(scale_model(load_model("myoleg"), SubjectScale(75.0, 1.80)).model)
    cam = PinholeCamera.look_at(1400.0, (1920, 1080), np.array([4.5, -5.4, 1.0]), np.array([0.0, 0.0, 0.9]))
    xy, sc, bad = _mirrored_run(walk, 20, 30)
    n = 45
    fitter = MonocularFitter(lm, cam, fps=60.0)
    outs = [o for k in range(n) if (o := fitter.step(float(walk.time_s[k]), xy[k], sc[k])) is not None]
    outs += fitter.flush()
    assert [o.time_s for o in outs] == [float(t) for t in walk.time_s[:n]]
    np.testing.assert_array_equal([o.swapped for o in outs], bad[:n])


def test_causal_repair_holds_its_run_through_a_garbled_frame(walk):
    xy, sc, bad = _mirrored_run(walk, 40, 67)
    rng = np.random.default_rng(3)
    garbled = 50
    xy[garbled] = xy[garbled] + rng.normal(0.0, 150.0, xy[garbled].shape)     # a detection that fits neither
    fixed, sw, rep = _causal(xy, sc)
    assert rep.unexplained_frames >= 1
    assert (sw == bad).all(), np.flatnonzero(sw != bad)
    ok = np.arange(xy.shape[0]) != garbled
    np.testing.assert_allclose(np.nan_to_num(fixed[ok]), np.nan_to_num(walk.xy_px[ok]))
