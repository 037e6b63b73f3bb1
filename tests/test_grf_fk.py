"""The compiled body kinematics of the ground reaction estimate (models/grf/fk.py) against MuJoCo's own
``mj_kinematics``, and ``BodyModel.poses`` (one pass over all frames) against its per-frame ``mj_kinematics`` path,
lumbar graft included, and the compiled angular momentum against the numpy formula it replaced.  Agreement to
float rounding (1e-14 m, 1e-14 in rotation entries, 1e-12 of |L|)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from models.grf.body import BodyModel
from models.grf.contact import myoleg_feet
from models.grf.fk import BodyTree, body_frames, supported
from models.grf.model import load_myoleg

#: Every joint type, a body with two joints, joint anchors off the body origin and inertial frames off the body
#: frame (so mj_local2Global computes both); child bodies of the world with and without joints.
_XML = """<mujoco><worldbody>
  <body name="root" pos="0.1 0.2 1.0" quat="0.9 0.1 0.3 0.2"><freejoint/>
    <inertial pos="0.01 0.02 -0.03" quat="0.8 0.2 -0.1 0.4" mass="3" diaginertia="0.1 0.2 0.3"/>
    <body name="a" pos="0.2 0 -0.1" quat="0.7 0.1 0.2 -0.3">
      <joint name="h1" type="hinge" axis="0.3 0.4 0.8" pos="0.01 -0.02 0.03"/>
      <joint name="s1" type="slide" axis="1 0.2 0" pos="0.0 0.05 0"/>
      <inertial pos="0 0 -0.1" mass="1" diaginertia="0.01 0.02 0.03"/>
      <body name="b" pos="0 0.1 -0.2"><joint name="ball" type="ball" pos="0.02 0 0.01"/>
        <geom type="box" size="0.05 0.02 0.1" pos="0.01 0.02 0.03" euler="10 20 30" mass="0.5"/></body>
      <body name="c" pos="0 -0.1 -0.2"><inertial pos="0 0 0" mass="0.2" diaginertia="0.001 0.001 0.001"/></body>
    </body>
  </body>
  <body name="w1" pos="1 0 0" euler="0 0 30"><joint name="h2" type="hinge" axis="0 0 1"/>
    <geom type="sphere" size="0.1" mass="1"/></body>
</worldbody></mujoco>"""


def _random_qpos(m: mujoco.MjModel, n: int, rng: np.random.Generator) -> np.ndarray:
    q = np.tile(np.asarray(m.qpos0, float), (n, 1))
    for j in range(m.njnt):
        a, t = int(m.jnt_qposadr[j]), int(m.jnt_type[j])
        if t == mujoco.mjtJoint.mjJNT_FREE:
            q[:, a:a + 3] = rng.normal(size=(n, 3))
            q[:, a + 3:a + 7] = rng.normal(size=(n, 4))      # not normalised: MuJoCo normalises
        elif t == mujoco.mjtJoint.mjJNT_BALL:
            q[:, a:a + 4] = rng.normal(size=(n, 4))
        else:
            q[:, a] += rng.normal(scale=0.5, size=n)
    q[0] = m.qpos0   # the reference pose (zero joint angles: MuJoCo's null-quaternion branches)
    return q


@pytest.mark.parametrize("which", ["xml", "myoleg"])
def test_body_frames_match_mj_kinematics(which):
    m = mujoco.MjModel.from_xml_string(_XML) if which == "xml" else load_myoleg()
    assert supported(m) == (True, "")
    rng = np.random.default_rng(5)
    q = _random_qpos(m, 40, rng)
    bodies = np.arange(1, m.nbody)
    local = rng.normal(scale=0.1, size=(bodies.size, 3))
    rows = np.flatnonzero(rng.random(q.shape[0]) < 0.8)
    X, R, PTS, EP, EM = body_frames(BodyTree(m), q, rows, bodies, bodies, local, bodies)
    skipped = np.setdiff1d(np.arange(q.shape[0]), rows)
    assert np.isnan(X[skipped]).all() and np.isfinite(X[rows]).all()
    d = mujoco.MjData(m)
    for k in rows:
        d.qpos[:] = q[k]
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(X[k], d.xipos[bodies], rtol=0, atol=1e-14)
        np.testing.assert_allclose(R[k], d.ximat[bodies], rtol=0, atol=1e-14)
        np.testing.assert_allclose(EP[k], d.xpos[bodies], rtol=0, atol=1e-14)
        np.testing.assert_allclose(EM[k], d.xmat[bodies], rtol=0, atol=1e-14)
        pts = d.xpos[bodies] + np.einsum("bij,bj->bi", d.xmat[bodies].reshape(-1, 3, 3), local)
        np.testing.assert_allclose(PTS[k], pts, rtol=0, atol=1e-14)
        if which == "myoleg":   # MuJoCo 4's arithmetic (models/dynamics/mj_pose.py): bit for bit
            for a, b in ((X[k], d.xipos[bodies]), (R[k], d.ximat[bodies]), (EP[k], d.xpos[bodies]),
                         (EM[k], d.xmat[bodies])):
                np.testing.assert_array_equal(a, b)


def test_unsupported_models_are_named():
    m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><body mocap="true"><geom size="0.1"/></body>'
                                       '</worldbody></mujoco>')
    ok, why = supported(m)
    assert not ok and "mocap" in why
    with pytest.raises(ValueError, match="mocap"):
        BodyTree(m)
    with pytest.raises(ValueError, match="qpos must have shape"):
        body_frames(BodyTree(load_myoleg()), np.zeros((3, 5)), np.arange(3), np.arange(1, 3), np.arange(1, 3),
                    np.zeros((2, 3)), np.arange(1, 2))


@pytest.mark.parametrize("lumbar", [False, True])
def test_poses_one_pass_equals_the_per_frame_path(lumbar):
    """MyoLeg: the compiled pass (lumbar graft vectorised) equals BodyModel.pose frame by frame."""
    m = load_myoleg()
    body = BodyModel(m, myoleg_feet())
    assert body.n_upper > 0
    rng = np.random.default_rng(11)
    q = _random_qpos(m, 30, rng)
    lum = rng.normal(scale=0.2, size=(q.shape[0], 3)) if lumbar else None
    valid = rng.random(q.shape[0]) < 0.9
    X, R, PTS = body.poses(q, lum, valid)
    Xr, Rr, Pr = body._poses_mj(q, lum, np.flatnonzero(valid))
    for a, b in ((X, Xr), (R, Rr), (PTS, Pr)):
        assert np.array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a[valid], b[valid], rtol=0, atol=1e-14)


def _angular_momentum_reference(body: BodyModel, x, v, r9, rd9, c, cv) -> np.ndarray:
    """The vectorised numpy form BodyModel.angular_momentum had before issue 22."""
    r = r9.reshape(r9.shape[:-1] + (3, 3))
    rd = rd9.reshape(rd9.shape[:-1] + (3, 3))
    w_skew = rd @ np.swapaxes(r, -1, -2)
    w = 0.5 * np.stack([w_skew[..., 2, 1] - w_skew[..., 1, 2], w_skew[..., 0, 2] - w_skew[..., 2, 0],
                        w_skew[..., 1, 0] - w_skew[..., 0, 1]], axis=-1)
    wl = np.einsum("...ji,...j->...i", r, w)
    spin = np.einsum("...ij,...j->...i", r, wl * body.inertia)
    orb = np.cross(x - c[..., None, :], v - cv[..., None, :])
    return np.einsum("b,...bi->...i", body.masses_kg, orb) + spin.sum(axis=-2)


def test_angular_momentum_kernel_equals_the_vectorised_formula():
    """Random poses and rates of change (non-skew dR/dt R^T too, as filtered rotations give): the compiled loop
    equals the numpy formula to rounding (1e-12 of |L|)."""
    m = load_myoleg()
    body = BodyModel(m, myoleg_feet())
    rng = np.random.default_rng(2)
    q = _random_qpos(m, 25, rng)
    X, R, _ = body.poses(q, None, np.ones(q.shape[0], bool))
    V = rng.normal(size=X.shape)
    RD = rng.normal(size=R.shape) * 3.0
    c, cv = body.com(X), body.com(V)
    out = np.empty((q.shape[0], 3))
    body.angular_momentum(X, V, R, RD, c, cv, out)
    ref = _angular_momentum_reference(body, X, V, R, RD, c, cv)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
