"""The OpenSim -> MuJoCo state map over all frames at once against the per-frame loop it replaced (kept here as
the reference), and :func:`mat_to_quat` against MuJoCo's ``mju_mat2Quat``."""
from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from models.body.registry import load_model
from models.dynamics.opensim_state import OPENSIM_TO_Z_UP, OpenSimStateMap, kinematics_from_opensim, mat_to_quat


def _rot(axis: int, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _reference_root(sm: OpenSimStateMap, values, speeds, accelerations, qpos, qvel, qacc) -> None:
    """The per-frame loop of the free root as it was before the map was vectorised (the reference)."""
    from models.dynamics.opensim_state import _pelvis_angular

    ia, ib, ic, it = sm._ia, sm._ib, sm._ic, sm._it
    R_rp, r_rp, qa, da = sm._R_rp, sm._r_rp, sm._qa, sm._da
    w_p, al_p = _pelvis_angular(values[:, ia], values[:, ib], values[:, ic], speeds[:, ia], speeds[:, ib],
                                speeds[:, ic], accelerations[:, ia], accelerations[:, ib], accelerations[:, ic])
    C = OPENSIM_TO_Z_UP
    p_p, v_p, a_p = values[:, it] @ C.T, speeds[:, it] @ C.T, accelerations[:, it] @ C.T
    quat = np.zeros(4)
    for k in range(values.shape[0]):
        R_wr = C @ (_rot(2, values[k, ia]) @ _rot(0, values[k, ib]) @ _rot(1, values[k, ic])) @ R_rp.T
        mujoco.mju_mat2Quat(quat, R_wr.ravel())
        dvec = R_wr @ r_rp
        w_r, al_r = R_rp @ w_p[k], R_rp @ al_p[k]
        w_w, al_w = R_wr @ w_r, R_wr @ al_r
        qpos[k, qa:qa + 3] = p_p[k] - dvec
        qpos[k, qa + 3:qa + 7] = quat
        qvel[k, da:da + 3] = v_p[k] - np.cross(w_w, dvec)
        qvel[k, da + 3:da + 6] = w_r
        qacc[k, da:da + 3] = a_p[k] - np.cross(al_w, dvec) - np.cross(w_w, np.cross(w_w, dvec))
        qacc[k, da + 3:da + 6] = al_r


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
    ref_q = np.tile(myoleg.qpos0, (500, 1))
    ref_v = np.zeros((500, myoleg.nv))
    ref_a = np.zeros((500, myoleg.nv))
    ref_q[:, sm._qadr] = values[:, sm._cols]
    ref_v[:, sm._dadr] = speeds[:, sm._cols]
    ref_a[:, sm._dadr] = acc[:, sm._cols]
    _reference_root(sm, values, speeds, acc, ref_q, ref_v, ref_a)
    sm.couplings.apply(ref_q, ref_v, ref_a)
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
