"""The OpenSim -> MuJoCo state map over all frames at once against the per-frame loop it replaced (the reference,
kept in tests/_subject_inputs_reference.py), and :func:`mat_to_quat` against MuJoCo's ``mju_mat2Quat``."""
from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
from _subject_inputs_reference import reference_map

from models.body.registry import load_model
from models.dynamics.opensim_state import OpenSimStateMap, kinematics_from_opensim, mat_to_quat


@pytest.fixture(scope="module")
def myoleg():
    return load_model("myoleg").model


def _coordinates(model, n: int, seed: int):
    names = [model.joint(j).name for j in range(model.njnt) if model.jnt_type[j] in (2, 3)]
    names += ["pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz", "lumbar_bending"]
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1.2, 1.2, (n, len(names)))
    values[:, -4:-1] = rng.uniform(-2.0, 2.0, (n, 3))            # metres
    values[: n // 4, len(names) - 7:len(names) - 4] = rng.uniform(-math.pi, math.pi, (n // 4, 3))  # any attitude
    return names, values, rng.normal(0, 3, values.shape), rng.normal(0, 30, values.shape)


def test_map_equals_the_per_frame_loop(myoleg):
    names, values, speeds, acc = _coordinates(myoleg, 500, 3)
    sm = OpenSimStateMap(myoleg, names)
    got = sm.map(values, speeds, acc)
    ref = reference_map(sm, values, speeds, acc)
    ref_q, ref_v, ref_a = ref.qpos, ref.qvel, ref.qacc
    # same float operations up to the summation order of 3x3 products: within a few ulp of the values
    np.testing.assert_allclose(got.qpos, ref_q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.qvel, ref_v, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.qacc, ref_a, rtol=0, atol=1e-9)
    assert "lumbar_bending" in got.ignored_columns
    one = kinematics_from_opensim(myoleg, names, values[7], speeds[7], acc[7])      # a single frame, (n_names,)
    np.testing.assert_allclose(one.qpos[0], got.qpos[7], rtol=0, atol=1e-15)


def test_mat_to_quat_is_mujocos_rule_on_every_branch():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(4000, 4))
    q /= np.linalg.norm(q, axis=1)[:, None]
    R = np.empty((len(q) + 4, 9))
    for i, qi in enumerate(q):
        mujoco.mju_quat2Mat(R[i], qi)
    R[-4:] = [np.eye(3).ravel(), np.diag([1.0, -1, -1]).ravel(), np.diag([-1.0, 1, -1]).ravel(),
              np.diag([-1.0, -1, 1]).ravel()]                 # identity and the three half turns: each branch
    ref = np.empty((len(R), 4))
    for i in range(len(R)):
        mujoco.mju_mat2Quat(ref[i], R[i])
    np.testing.assert_array_equal(mat_to_quat(R.reshape(-1, 3, 3)), ref)


def test_map_rejects_a_wrong_column_count(myoleg):
    names, values, _, _ = _coordinates(myoleg, 3, 0)
    with pytest.raises(ValueError, match="columns"):
        OpenSimStateMap(myoleg, names).map(values[:, :-1])
