"""Single-camera left/right swap repair (models.kinematics.monocular_swaps) on a model-generated walk."""
from __future__ import annotations

import numpy as np
import pytest

from models.body.blazepose import BLAZEPOSE_33
from models.body.registry import load_model
from models.body.scaling import SubjectScale, scale_model
from models.kinematics.monocular_camera import PinholeCamera
from models.kinematics.monocular_model import LandmarkModel
from models.kinematics.monocular_swaps import MIRROR_INDEX, repair_left_right
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
