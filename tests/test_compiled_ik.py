"""The compiled marker IK (models/kinematics/compiled_ik.py, body_kinematics.py) against the Python reference loop.

* the body-only forward kinematics and point Jacobians equal MuJoCo's ``mj_kinematics`` / ``mj_jac`` (random poses
  over the joint ranges, MyoLeg): measured <= 3e-15, bound 1e-12;
* a shared PS trial and a shared DM trial on their subject-scaled models (the offline chain's IK): same iterations,
  flags and markers used per frame, coordinates within 1e-10 rad / 1e-11 m (measured: <= 1.1e-14 rad,
  <= 3.6e-15 m; the paths differ only in the summation order of the small dense products and in the body
  kinematics' rounding), residuals within 1e-12 m;
* the frames the compiled trial loop hands back to Python (cold start, too few markers, re-initialisation after a
  jump) and ``step`` frame by frame give the reference's results;
* the fallback: ``use_compiled=False`` or no usable C API -> the Python loop.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest

from models.body.markerset import Marker, MarkerSet, from_opensim_markerset
from models.dynamics import mj_capi
from models.io.lab_files import read_trial, shared_data_dir
from models.io.shared_trials import shared_trials
from models.kinematics import body_kinematics as bk
from models.kinematics import compiled_ik
from models.kinematics.ik_types import IKParams, IKStatus
from models.kinematics.inverse_kinematics import InverseKinematics, load_myoleg

DATA = shared_data_dir()
needs_capi = pytest.mark.skipif(not compiled_ik.available(load_myoleg())[0], reason="compiled IK unavailable here")
ROT_TOL, M_TOL = 1e-10, 1e-11


@pytest.fixture(scope="module")
def myoleg() -> mujoco.MjModel:
    return load_myoleg()


def _random_q(m: mujoco.MjModel, rng: np.random.Generator) -> np.ndarray:
    q = m.qpos0.copy()
    for j in range(m.njnt):
        a = m.jnt_qposadr[j]
        if m.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
            q[a] = rng.uniform(*m.jnt_range[j]) if m.jnt_limited[j] else rng.normal()
        elif m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            u = rng.normal(size=4)
            q[a:a + 3] = rng.normal(size=3)
            q[a + 3:a + 7] = u / np.linalg.norm(u) * (1.0 + 1e-6 * rng.normal())   # slightly off unit
    return q


def _chain(m: mujoco.MjModel, b: int) -> set[int]:
    out = set()
    while b > 0:
        out.add(b)
        b = int(m.body_parentid[b])
    return out


@needs_capi
def test_body_kinematics_and_jacobian_equal_mujoco(myoleg):
    m = myoleg
    ok, why = bk.supported(m)
    assert ok, why
    d, d2 = mujoco.MjData(m), mujoco.MjData(m)
    B, S = bk.body_model(m), bk.body_state(d2)
    rng = np.random.default_rng(3)
    jac = np.zeros((3, m.nv))
    worst = dict.fromkeys(("xpos", "xmat", "xquat", "xanchor", "xaxis", "jac"), 0.0)
    for _ in range(50):
        q = _random_q(m, rng)
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        bk.body_fk(B, S, q)
        for f in ("xpos", "xmat", "xquat", "xanchor", "xaxis"):
            worst[f] = max(worst[f], float(np.abs(getattr(d, f) - getattr(d2, f)).max()))
            np.testing.assert_array_equal(getattr(d2, f), getattr(d, f), err_msg=f)   # MuJoCo 4's arithmetic
        for b in range(1, m.nbody):
            p = d.xpos[b] + d.xmat[b].reshape(3, 3) @ rng.normal(scale=0.1, size=3)
            mujoco.mj_jac(m, d, jac, None, p, b)
            chain = _chain(m, b)
            for dof in range(m.nv):
                if int(m.dof_bodyid[dof]) not in chain:
                    assert not jac[:, dof].any()
                    continue
                col = np.array(bk.point_jacobian_column(S, *bk.dof_column(m, dof), *p))
                worst["jac"] = max(worst["jac"], float(np.abs(col - jac[:, dof]).max()))
    print({k: f"{v:.1e}" for k, v in worst.items()})
    assert max(worst.values()) < 1e-12, worst


def test_unsupported_models_are_named():
    xml = """<mujoco><worldbody><body mocap="true"/><body><joint type="ball"/><geom size="0.1"/></body>
             </worldbody></mujoco>"""
    ok, why = bk.supported(mujoco.MjModel.from_xml_string(xml))
    assert not ok and "mocap" in why


def _shared_ik(name: str):
    from models.trial_analysis import AnalyzeParams, subject_model

    trials = {t.name: t for t in shared_trials(DATA)} if DATA.is_dir() else {}
    if name not in trials or not Path(trials[name].trc).is_file():
        pytest.skip(f"shared trial {name} absent at {DATA}")
    t = trials[name]
    model = subject_model(AnalyzeParams(t.mass_kg, t.height_m, t.side), Path(t.markerset), [])
    mset = from_opensim_markerset(Path(t.markerset), model)
    markers = read_trial(Path(t.trc))
    return model, mset, getattr(markers, "markers", markers)


def _assert_same(a, b) -> None:
    """Two IKTrials: same per-frame integers, coordinates within ROT_TOL (rad) / M_TOL (m)."""
    np.testing.assert_array_equal(a.iterations, b.iterations)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.markers_used, b.markers_used)
    np.testing.assert_array_equal(np.isnan(a.marker_error_m), np.isnan(b.marker_error_m))
    np.testing.assert_array_equal(np.isnan(a.coordinates), np.isnan(b.coordinates))
    metres = np.array([n.startswith("pelvis_t") for n in a.coordinate_names])
    d = np.nan_to_num(np.abs(a.coordinates - b.coordinates))
    assert d[:, ~metres].max(initial=0.0) < ROT_TOL and d[:, metres].max(initial=0.0) < M_TOL, (
        d[:, ~metres].max(initial=0.0), d[:, metres].max(initial=0.0))
    assert np.nanmax(np.abs(a.residual_rms_m - b.residual_rms_m), initial=0.0) < 1e-12
    assert np.nanmax(np.abs(a.marker_error_m - b.marker_error_m), initial=0.0) < 1e-12
    assert np.nanmax(np.abs(a.qpos - b.qpos), initial=0.0) < ROT_TOL


@needs_capi
@pytest.mark.parametrize("name", ["PS_ss1", "DM_og1"])
def test_shared_trial_compiled_equals_python(name):
    model, mset, markers = _shared_ik(name)
    fast = InverseKinematics(model, mset, IKParams())
    ref = InverseKinematics(model, mset, IKParams(), use_compiled=False)
    assert fast._cik is not None and ref._cik is None and ref.compiled_reason == "use_compiled=False"
    a, b = fast.run(markers), ref.run(markers)
    assert a.iterations.sum() > a.iterations.size            # real work: several iterations a frame
    assert ((a.status & IKStatus.COLD_START) > 0).sum() == 1
    _assert_same(a, b)


def _event_trial(ik: InverseKinematics, m: mujoco.MjModel) -> SimpleNamespace:
    """A smooth synthetic motion with a dropped marker, a frame with too few markers, and a jump to a far pose
    (the warm start fails: re-initialisation), world z up."""
    rng = np.random.default_rng(11)
    lo, hi = ik.coordinate_limits
    base = m.qpos0.copy()
    qa = [m.joint(c).qposadr[0] for c in ik.solved_coordinates]
    base[qa] = lo + (hi - lo) * rng.uniform(0.35, 0.65, size=len(qa))
    base[2] = 0.95
    n = 30
    qs = np.repeat(base[None], n, axis=0)
    t = np.arange(n) / 100.0
    for k, a in enumerate(qa):
        qs[:, a] = np.clip(base[a] + 0.15 * (hi[k] - lo[k]) * np.sin(2 * np.pi * t + k), lo[k], hi[k])
    qs[:, 0] = 1.1 * t
    far = m.qpos0.copy()
    far[qa] = lo + (hi - lo) * 0.8
    far[0:3] = (0.5, 0.3, 0.7)
    qs[20:23] = far                                            # the jump: warm start fails -> re-initialisation
    x = np.stack([ik.marker_positions(q) for q in qs])
    x[5:9, 2] = np.nan                                         # one marker missing for a few frames
    x[12, 3:] = np.nan                                         # too few markers on frame 12
    x[13, 0, 1] = np.inf
    return SimpleNamespace(time_s=t, marker_names=ik.marker_names, positions_m=x)


@needs_capi
def test_handed_back_frames_and_step_equal_python(myoleg):
    mset = from_opensim_markerset(DATA / "GC5_PS" / "model" / "GC5.osim", myoleg) if DATA.is_dir() else None
    if mset is None:
        pytest.skip(f"shared marker set absent at {DATA}")
    p = IKParams(max_iterations=3)        # a jump of 0.5 m needs more than 3 capped steps: re-initialisation
    fast = InverseKinematics(myoleg, mset, p)
    ref = InverseKinematics(myoleg, mset, p, use_compiled=False)
    trial = _event_trial(ref, myoleg)
    a, b = fast.run(trial, source_frame="z_up"), ref.run(trial, source_frame="z_up")
    st = a.status
    assert st[12] & IKStatus.TOO_FEW_MARKERS and st[6] & IKStatus.MARKERS_MISSING
    assert st[20] & IKStatus.REINITIALISED and st[20] & IKStatus.COLD_START
    assert (st & IKStatus.NOT_CONVERGED).any()
    _assert_same(a, b)
    # step() frame by frame: warm frames through the compiled loop, the others through the Python frame logic
    fast.reset()
    f = fast.new_frame()
    for k in range(trial.positions_m.shape[0]):
        fast.step(trial.positions_m[k], f)
        assert f.iterations == a.iterations[k] and int(f.status) == a.status[k]
        np.testing.assert_allclose(f.coordinates, a.coordinates[k], rtol=0, atol=ROT_TOL)
        np.testing.assert_allclose(f.marker_error_m, a.marker_error_m[k], rtol=0, atol=1e-12)
        assert f.markers_used == a.markers_used[k] and f.converged == bool(a.iterations[k] and
                                                                           not a.status[k] & IKStatus.NOT_CONVERGED)


_LEG = """<mujoco><compiler angle="radian"/><worldbody><body name="pelvis" pos="0 0 1"><freejoint/><geom size="0.1" mass="1"/>
  <body name="thigh" pos="0 0.1 0"><joint name="hip" axis="0 1 0" range="-1 2" ref="0.2"/><geom size="0.05" mass="1"/>
    <body name="shank" pos="0 0 -0.4"><joint name="knee" axis="0 1 0" range="-2 0.1" ref="-0.3"/>
      <joint name="knee_tx" type="slide" axis="1 0 0" ref="0.01"/><geom size="0.04" mass="1"/>
      <body name="foot" pos="0 0 -0.4"><joint name="ankle" axis="1 0 0" range="-0.8 0.8"/><geom size="0.03" mass="1"/>
  </body></body></body></body></worldbody>
  <equality><joint joint1="knee_tx" joint2="knee" polycoef="0.002 0.02 0.01 0.003 0"/></equality></mujoco>"""


@needs_capi
def test_small_model_with_reference_positions_and_a_coupled_slide():
    """Not MyoLeg: nonzero qpos0 (joint refs) of the independent and the dependent coordinates, a polynomial
    coupling, markers on every body; the compiled run equals the Python run."""
    m = mujoco.MjModel.from_xml_string(_LEG)
    rng = np.random.default_rng(5)
    bodies = ["pelvis"] * 4 + ["thigh"] * 3 + ["shank"] * 3 + ["foot"] * 3
    mset = MarkerSet(tuple(Marker(f"m{i}", b, rng.uniform(-0.08, 0.08, 3)) for i, b in enumerate(bodies)))
    p = IKParams(coordinates=("hip", "knee", "ankle"))
    fast, ref = InverseKinematics(m, mset, p), InverseKinematics(m, mset, p, use_compiled=False)
    assert fast._cik is not None
    n = 25
    t = np.arange(n) / 50.0
    qs = np.repeat(m.qpos0[None], n, axis=0)
    qs[:, 0] = 0.8 * t
    qs[:, 3:7] = (np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0)     # body y up, as MyoLeg's pelvis (no gimbal lock)
    qs[:, m.joint("hip").qposadr[0]] = 0.2 + 0.6 * np.sin(3 * t)
    qs[:, m.joint("knee").qposadr[0]] = -0.3 - 0.8 * (1 - np.cos(3 * t))
    qs[:, m.joint("ankle").qposadr[0]] = 0.3 * np.sin(5 * t)
    x = np.stack([ref.marker_positions(q) for q in qs]) + rng.normal(scale=0.002, size=(n, len(bodies), 3))
    trial = SimpleNamespace(time_s=t, marker_names=mset.names, positions_m=x)
    a, b = fast.run(trial, source_frame="z_up"), ref.run(trial, source_frame="z_up")
    assert np.nanmax(a.residual_rms_m) < 0.01
    _assert_same(a, b)


def test_falls_back_without_the_c_api(myoleg, monkeypatch):
    mset = from_opensim_markerset(DATA / "GC5_PS" / "model" / "GC5.osim", myoleg) if DATA.is_dir() else None
    if mset is None:
        pytest.skip(f"shared marker set absent at {DATA}")
    monkeypatch.setattr(mj_capi, "capi_available", lambda: (False, "patched off"))
    ik = InverseKinematics(myoleg, mset, IKParams())
    assert ik._cik is None and ik.compiled_reason == "patched off"
    f = ik.new_frame()
    ik.step(ik.marker_positions(myoleg.qpos0), f)
    assert f.residual_rms_m < 1e-6
