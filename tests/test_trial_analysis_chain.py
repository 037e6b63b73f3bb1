"""The analysis chain's dynamics in one pass (issue 22) equals the stages it replaced, run one after the other.

:func:`models.trial_analysis.trial_dynamics` with muscles now runs ID, static optimisation and the knee contact of
the side in one compiled loop (the SO reading the trial's model itself, no copy), and
:func:`models.muscles.knee_contact.knee_contact_from_analysis` returns that contact (or reuses the analysis' inverse
dynamics) instead of running inverse dynamics again.  The reference here is the code path before: a fresh
``InverseDynamics.run``, ``StaticOptimization.run`` on its private copy, and ``KneeContact.run`` with its own
inverse dynamics.  Required: joint moments, residuals and knee moments bit for bit; every SO output to 1e-9 (the
chain's tendon kernel, :mod:`models.muscles.compiled_tendon`, gives mj_tendon's ``ten_J`` to 1e-12 of each row's
largest entry; iterations within one); the contact to 1e-12 relative (the crossing sums read the SO's tendon paths).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.io.lab_files import shared_data_dir
from models.muscles.knee_contact import KneeContact, knee_contact_from_analysis
from models.muscles.static_optimization import SOParams, StaticOptimization
from models.trial_analysis import AnalyzeParams, analyze_trial, kinematic_foot_wrenches, trial_dynamics, trial_kinematics

PS = shared_data_dir() / "GC5_PS"
TRC = PS / "trc" / "PS_ngait_og_ss1.trc"
GRF = PS / "grf" / "PS_ngait_og_ss1_kinetics.mot"
needs_data = pytest.mark.skipif(not (TRC.exists() and GRF.exists()), reason=f"shared data absent at {PS}")
SO_FIELDS = ("activation", "muscle_force_n", "muscle_moment_nm", "reserve_nm", "residual_nm", "cost", "iterations",
             "status")
KC_FIELDS = ("total_n", "medial_n", "lateral_n", "axial_n", "frontal_moment_nm", "contact_force_n", "muscle_force_n",
             "intersegmental_force_n")


def _reference(kin, res, side: str, mass_kg: float, condyle=None, tension=None, names=None):
    """The stages one after the other, as before issue 22's chain: ``(JointMomentsTrial, SOTrial, KneeContactTrial)``."""
    from models.dynamics.wrenches import ExternalWrenchTrial

    ext = [ExternalWrenchTrial(f"calcn_{s[0]}", res.foot_force_n[s], res.foot_cop_m[s], res.foot_free_moment_nm[s],
                               res.time_s) for s in ("left", "right")]
    mk = kin.mapped
    inv = InverseDynamics(kin.model, InverseDynamicsParams(reaction_bodies=(f"tibia_{side[0]}",), gravity_m_s2=9.80665))
    jm = inv.run(mk.qpos, mk.qvel, mk.qacc, ext, time_s=kin.time_s)
    so = StaticOptimization(kin.model, SOParams()).run(mk.qpos, mk.qvel, jm.coordinate_force)
    if tension is None:
        tension, names = so.muscle_force_n, so.muscle_names
    kc = KneeContact(kin.model, side, body_mass_kg=mass_kg, condyle_offsets_m=condyle).run(
        mk.qpos, mk.qvel, mk.qacc, ext, tension, names, kin.time_s)
    return jm, so, kc


def _assert_contact_close(a, b):
    for f in KC_FIELDS:
        x, y = np.asarray(getattr(a, f)), np.asarray(getattr(b, f))
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=f)
        ok = np.isfinite(y)
        np.testing.assert_allclose(x[ok], y[ok], rtol=1e-12, atol=1e-12 * max(np.abs(y[ok]).max(), 1.0), err_msg=f)


@pytest.fixture(scope="module")
def ps_ss1():
    params = AnalyzeParams(75.0, 1.80, "left", muscles=True)
    kin = trial_kinematics(TRC, PS / "model" / "GC5.osim", params)
    return params, kin


@needs_data
@pytest.mark.parametrize("grf", ["kinematics", "force plates"])
def test_one_pass_chain_equals_the_separate_stages(ps_ss1, grf):
    params, kin = ps_ss1
    model_bytes = kin.model.body_pos.copy(), kin.model.actuator_gainprm.copy(), int(kin.model.opt.disableflags)
    if grf == "kinematics":
        res = trial_dynamics(kin, kinematic_foot_wrenches(kin, params, []), "kinematics", params, [])
    else:
        res = analyze_trial(None, None, params, grf_path=GRF, kin=kin)
    # the contact points of the analysis: about GC5.osim's epicondyle midpoint (kin.markerset)
    from models.muscles.knee_contact import subject_condyle_geometry

    condyle = subject_condyle_geometry(kin.model, "left", kin.markerset).offsets_m
    assert res.knee_contact.condyle_offsets_m == condyle and condyle[0] != condyle[1]
    jm, so, kc = _reference(kin, res, "left", 75.0, condyle=condyle)
    np.testing.assert_array_equal(res.moments_nm, jm.coordinate_force)
    np.testing.assert_array_equal(res.residual_force_n, jm.residual_force_n)
    np.testing.assert_array_equal(res.joint_moments.reaction_force_n, jm.reaction_force_n)
    for f in SO_FIELDS:   # the chain's SO runs the tendon kernel (ten_J to 1e-12 of mj_tendon's): SO to 1e-9
        x, y = getattr(res.muscles, f), getattr(so, f)
        if f in ("iterations", "status"):
            assert np.all(np.abs(x - y) <= (1 if f == "iterations" else 0)), f
        else:
            scale = 1.0 if f == "activation" else max(1.0, float(np.nanmax(np.abs(y))))
            np.testing.assert_allclose(x, y, rtol=0.0, atol=1e-9 * scale, err_msg=f)
    assert np.all(res.muscles.status == 0)
    ours = knee_contact_from_analysis(kin, res)
    assert ours is res.knee_contact                      # the contact of the shared pass, not a second one
    _assert_contact_close(ours, kc)
    assert np.nanmax(ours.total_n) > 75.0 * 9.80665     # the loads are really there (> 1 BW at the peak)
    # the SO read kin.model itself: it is unchanged
    np.testing.assert_array_equal(kin.model.body_pos, model_bytes[0])
    np.testing.assert_array_equal(kin.model.actuator_gainprm, model_bytes[1])
    assert int(kin.model.opt.disableflags) == model_bytes[2]


@needs_data
def test_other_offsets_and_tensions_reuse_the_inverse_dynamics(ps_ss1):
    params, kin = ps_ss1
    res = trial_dynamics(kin, kinematic_foot_wrenches(kin, params, []), "kinematics", params, [])
    condyle = (0.018, 0.024)
    _, _, ref = _reference(kin, res, "left", 75.0, condyle=condyle)
    _assert_contact_close(knee_contact_from_analysis(kin, res, condyle), ref)
    T = 0.5 * res.muscles.muscle_force_n[:, :40]
    names = res.muscles.muscle_names[:40]
    _, _, ref = _reference(kin, res, "left", 75.0, tension=T, names=names,
                           condyle=res.knee_contact.condyle_offsets_m)   # the analysis' own (subject) points
    ours = knee_contact_from_analysis(kin, res, tension_n=T, muscle_names=names)
    assert ours is not res.knee_contact
    _assert_contact_close(ours, ref)


@needs_data
def test_an_analysis_from_other_kinematics_is_recomputed(ps_ss1):
    """Stored results are used only for the kinematics they came from (the same ``time_s`` object)."""
    params, kin = ps_ss1
    res = trial_dynamics(kin, kinematic_foot_wrenches(kin, params, []), "kinematics", params, [])
    moved = dataclasses.replace(res, time_s=res.time_s.copy())      # e.g. keypoint_analysis re-stamps the time
    ours = knee_contact_from_analysis(kin, moved)
    assert ours is not res.knee_contact
    _assert_contact_close(ours, res.knee_contact)
    kin2 = dataclasses.replace(kin, time_s=moved.time_s)             # kinematics with that time: reused again
    assert knee_contact_from_analysis(kin2, moved) is res.knee_contact


@needs_data
def test_without_muscles_no_contact_is_stored(ps_ss1):
    params, kin = ps_ss1
    p = dataclasses.replace(params, muscles=False)
    res = trial_dynamics(kin, kinematic_foot_wrenches(kin, p, []), "kinematics", p, [])
    assert res.muscles is None and res.knee_contact is None
    assert "tibia_l" in res.joint_moments.reaction_bodies
    with pytest.raises(ValueError, match="muscles=True"):
        knee_contact_from_analysis(kin, res)


def test_tibia_scale_keeps_only_the_template_length():
    from models.body.registry import load_model
    from models.muscles import knee_contact as kcm

    template = load_model("myoleg").model
    scaled = load_model("myoleg").model
    scaled.body("talus_l").pos *= 1.07
    kcm.clear_template_cache()
    assert kcm.tibia_scale(scaled, "left") == kcm.tibia_scale(scaled, "left", template) == pytest.approx(1.07)
    assert set(kcm._TEMPLATE_TIBIA_M) == {"l"}
    assert kcm.tibia_scale(template, "right") == 1.0
    kcm.clear_template_cache()
    assert not kcm._TEMPLATE_TIBIA_M


def test_a_broken_marker_set_file_is_named(tmp_path):
    from models.trial_analysis import subject_model

    bad = tmp_path / "broken.osim"
    bad.write_text("<OpenSimDocument><Model><BodySet>")
    with pytest.raises(ValueError, match="broken.osim: not valid XML"):
        subject_model(AnalyzeParams(70.0, 1.75, "left"), bad, [])


def test_file_digests_follow_a_rewritten_file(tmp_path):
    import hashlib

    from models.muscles import subject_calibration as sc

    f = tmp_path / "model.osim"
    f.write_bytes(b"<OpenSimDocument/>")
    assert sc._sha256(f) == hashlib.sha256(b"<OpenSimDocument/>").hexdigest()
    f.write_bytes(b"<OpenSimDocument><Model/></OpenSimDocument>")          # rewritten: read again
    assert sc._sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    sc.clear_digest_cache()
    assert not sc._DIGESTS
