"""The kinematics kernel (:mod:`models.dynamics.compiled_kinematics`) equals ``mj_kinematics`` bit for bit.

On MyoLeg and MyoFullBody (hinge, ball and free joints): bodies, inertial frames, joint axes, the tendons' sites and
wrapping geoms on random poses; a model it cannot reproduce (mocap bodies) is refused; the compiled chain uses it
for ID's position stage on these models (its ID/SO outputs against the Python stages: ``tests/test_compiled_chain.py``).
"""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from models.body.registry import load_model
from models.dynamics.compiled_kinematics import (
    kinematics_frame,
    kinematics_matches,
    kinematics_pack,
    kinematics_views,
    tendon_frames,
)


@pytest.fixture(scope="module", params=["myoleg", "myofullbody"])
def model(request):
    return load_model(request.param).model


def test_kernel_poses_are_mj_kinematics_bit_for_bit(model):
    geoms, sites = tendon_frames(model)
    assert sites.size > 0 and geoms.size > 0
    K = kinematics_pack(model, geoms, sites)
    assert kinematics_matches(model, K)
    d_ref, d = mujoco.MjData(model), mujoco.MjData(model)
    V = kinematics_views(d)
    rng = np.random.default_rng(11)
    for _ in range(25):
        q = model.qpos0 + 0.4 * rng.standard_normal(model.nq)   # ball/free quaternions unnormalised on purpose
        d_ref.qpos[:] = q
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d_ref)
        kinematics_frame(K, V)
        for f in ("xpos", "xquat", "xmat", "xipos", "ximat", "xanchor", "xaxis"):
            np.testing.assert_array_equal(getattr(d, f), getattr(d_ref, f), err_msg=f)
        np.testing.assert_array_equal(d.site_xpos[sites], d_ref.site_xpos[sites])
        np.testing.assert_array_equal(d.site_xmat[sites], d_ref.site_xmat[sites])
        np.testing.assert_array_equal(d.geom_xpos[geoms], d_ref.geom_xpos[geoms])
        np.testing.assert_array_equal(d.geom_xmat[geoms], d_ref.geom_xmat[geoms])
        # and the tendons computed from them
        mujoco.mj_comPos(model, d_ref)
        mujoco.mj_comPos(model, d)
        mujoco.mj_tendon(model, d_ref)
        mujoco.mj_tendon(model, d)
        np.testing.assert_array_equal(d.ten_length, d_ref.ten_length)
        np.testing.assert_array_equal(d.ten_J, d_ref.ten_J)


def test_models_the_kernel_cannot_reproduce_are_refused():
    m = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body mocap='true' pos='0 0 1'><geom size='0.1'/></body>"
        "<body><joint type='hinge'/><geom size='0.1'/></body></worldbody></mujoco>")
    K = kinematics_pack(m, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    assert not kinematics_matches(m, K)


def test_compiled_chain_uses_the_kernel(model):
    from models.dynamics import mj_capi
    from models.dynamics.inverse_dynamics import InverseDynamics
    from models.muscles.compiled_chain import CompiledChain
    from models.muscles.static_optimization import StaticOptimization

    if not mj_capi.capi_available()[0]:
        pytest.skip(mj_capi.capi_available()[1])
    assert CompiledChain(StaticOptimization(model), InverseDynamics(model)).kinematics_kernel
    assert not CompiledChain(StaticOptimization(model), None).kinematics_kernel
