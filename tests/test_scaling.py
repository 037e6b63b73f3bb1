"""models.body.scaling: subject scaling by height, mass and a static trial, checked on the compiled models."""

from __future__ import annotations

import math
import textwrap

import mujoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("myo_sim")
pytest.importorskip("musclemimic_models")

from models.body.registry import MusculoskeletalModel, load_model  # noqa: E402
from models.body.scaling import (  # noqa: E402
    HEIGHT_RANGE_M,
    LOWER_LIMB_MARKER_MAP,
    MASS_RANGE_KG,
    SegmentMeasure,
    SubjectScale,
    compute_scale_factors,
    scale_model,
)


# the same two-segment muscle model as in test_registry.py: one mesh shared by both segments
from _support import TWO_LINK_XML  # noqa: E402


@pytest.fixture(scope="module")
def myoleg() -> MusculoskeletalModel:
    return load_model("myoleg")


@pytest.fixture(scope="module")
def myoleg_big(myoleg) -> tuple[MusculoskeletalModel, SubjectScale]:
    """MyoLeg at 1.5 x its template height and 90 kg."""
    subject = SubjectScale(mass_kg=90.0, height_m=1.5 * myoleg.info.height_m)
    return scale_model(myoleg, subject), subject


def _moving(ids: np.ndarray) -> np.ndarray:
    return ids > 0  # elements of the world body (floor, scenery) are not scaled


def _mesh_in_body(m: mujoco.MjModel, g: int) -> np.ndarray:
    """Vertices of mesh geom ``g`` in its body's frame (MuJoCo re-centres and re-orients meshes to their principal
    axes, and the axes of a nearly symmetric mesh may come out flipped after scaling, so compare in the body)."""
    k = m.geom_dataid[g]
    v = m.mesh_vert[m.mesh_vertadr[k]:m.mesh_vertadr[k] + m.mesh_vertnum[k]].astype(float)
    R = np.empty(9)
    mujoco.mju_quat2Mat(R, m.geom_quat[g])
    return v @ R.reshape(3, 3).T + m.geom_pos[g]


def _L0_LT(m: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray]:
    """MuJoCo's optimal length and offset: L0 = (Lmax - Lmin)/(r1 - r0), LT = Lmin - r0 L0."""
    lr, rng = m.actuator_lengthrange, m.actuator_gainprm[:, :2]
    L0 = (lr[:, 1] - lr[:, 0]) / (rng[:, 1] - rng[:, 0])
    return L0, lr[:, 0] - rng[:, 0] * L0


# --------------------------------------------------------------------------------------------------
# SubjectScale
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(mass_kg=19.9, height_m=1.7), "mass_kg"),
        (dict(mass_kg=250.1, height_m=1.7), "mass_kg"),
        (dict(mass_kg=float("nan"), height_m=1.7), "mass_kg"),
        (dict(mass_kg=70.0, height_m=0.49), "height_m"),
        (dict(mass_kg=70.0, height_m=2.6), "height_m"),
        (dict(mass_kg=70.0, height_m=float("inf")), "height_m"),
        (dict(mass_kg=70.0, height_m=175.0), "height_m"),  # centimetres by mistake
    ],
)
def test_bad_subject_values_are_rejected_naming_field_and_value(kwargs, field):
    with pytest.raises(ValueError) as e:
        SubjectScale(**kwargs)
    assert f"SubjectScale.{field}={kwargs[field]!r}" in str(e.value)


def test_subject_values_must_be_numbers():
    with pytest.raises(TypeError, match="mass_kg"):
        SubjectScale(mass_kg="70", height_m=1.7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="height_m"):
        SubjectScale(mass_kg=70.0, height_m=True)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_subject_validation_matches_the_ranges(mass, height):
    ok = (math.isfinite(mass) and MASS_RANGE_KG[0] <= mass <= MASS_RANGE_KG[1]
          and math.isfinite(height) and HEIGHT_RANGE_M[0] <= height <= HEIGHT_RANGE_M[1])
    if ok:
        s = SubjectScale(mass, height)
        assert (s.mass_kg, s.height_m) == (mass, height)
    else:
        with pytest.raises(ValueError):
            SubjectScale(mass, height)


# --------------------------------------------------------------------------------------------------
# uniform scaling (height and mass)
# --------------------------------------------------------------------------------------------------


def test_mass_scales_exactly_to_the_subject(myoleg, myoleg_big):
    scaled, subject = myoleg_big
    assert scaled.model.body_subtreemass[0] == pytest.approx(subject.mass_kg, rel=1e-12)
    assert scaled.info.mass_kg == pytest.approx(subject.mass_kg, rel=1e-12)
    k_m = subject.mass_kg / myoleg.info.mass_kg
    np.testing.assert_allclose(scaled.model.body_mass, myoleg.model.body_mass * k_m, rtol=1e-12)
    # a light subject too: the template's boundmass must not floor the scaled small bodies
    light = scale_model("myoleg", SubjectScale(mass_kg=20.0, height_m=0.9))
    assert light.model.body_subtreemass[0] == pytest.approx(20.0, rel=1e-12)


def test_one_and_a_half_times_the_height_gives_one_and_a_half_times_every_length(myoleg, myoleg_big):
    scaled, _ = myoleg_big
    m0, m1 = myoleg.model, scaled.model
    s = scaled.scale_factors.height_factor
    assert s == pytest.approx(1.5)
    np.testing.assert_allclose(m1.body_pos, s * m0.body_pos, atol=1e-14)  # segment lengths, joint centres
    np.testing.assert_allclose(m1.jnt_pos, s * m0.jnt_pos, atol=1e-14)
    site = _moving(m0.site_bodyid)
    np.testing.assert_allclose(m1.site_pos[site], s * m0.site_pos[site], atol=1e-14)  # muscle path points
    geom = _moving(m0.geom_bodyid)
    np.testing.assert_allclose(m1.geom_pos[geom], s * m0.geom_pos[geom], atol=1e-13)
    np.testing.assert_allclose(m1.geom_size[geom], s * m0.geom_size[geom], atol=1e-13)
    np.testing.assert_allclose(m1.body_ipos, s * m0.body_ipos, atol=1e-14)
    for g in np.flatnonzero(geom & (m0.geom_type == mujoco.mjtGeom.mjGEOM_MESH)):  # float32 mesh vertices
        np.testing.assert_allclose(_mesh_in_body(m1, g), s * _mesh_in_body(m0, g), rtol=1e-6, atol=1e-6)
    # thigh and shank lengths in the default pose
    d0, d1 = myoleg.new_data(), scaled.new_data()
    mujoco.mj_kinematics(m0, d0)
    mujoco.mj_kinematics(m1, d1)
    for a, b in (("femur_r", "tibia_r"), ("tibia_r", "talus_r"), ("pelvis", "femur_l")):
        l0 = np.linalg.norm(d0.xpos[m0.body(b).id] - d0.xpos[m0.body(a).id])
        l1 = np.linalg.norm(d1.xpos[m1.body(b).id] - d1.xpos[m1.body(a).id])
        assert l1 == pytest.approx(s * l0, rel=1e-12)
    # the scaled model's own height measure gives the subject's height back
    assert scaled.info.height_m == pytest.approx(1.5 * myoleg.info.height_m)
    # slide-joint couplings (knee translations, in metres) scale, angle couplings do not
    slide = m0.jnt_type[m0.eq_obj1id] == mujoco.mjtJoint.mjJNT_SLIDE
    np.testing.assert_allclose(m1.eq_data[slide, :5], s * m0.eq_data[slide, :5], rtol=1e-12, atol=1e-18)
    np.testing.assert_array_equal(m1.eq_data[~slide, :5], m0.eq_data[~slide, :5])
    # the root starts 1.5 x higher
    assert m1.qpos0[2] == pytest.approx(s * m0.qpos0[2])


def test_inertia_scales_with_mass_times_length_squared(myoleg, myoleg_big):
    scaled, subject = myoleg_big
    k_m = subject.mass_kg / myoleg.info.mass_kg
    s = scaled.scale_factors.height_factor
    np.testing.assert_allclose(scaled.model.body_inertia, myoleg.model.body_inertia * k_m * s * s, rtol=1e-14)
    np.testing.assert_allclose(scaled.model.body_iquat, myoleg.model.body_iquat, atol=1e-14)


def test_muscle_parameters_follow_the_rules(myoleg, myoleg_big):
    scaled, subject = myoleg_big
    m0, m1 = myoleg.model, scaled.model
    s, k_m = scaled.scale_factors.height_factor, subject.mass_kg / myoleg.info.mass_kg
    # F0 ~ mass (default strength_exponent 1), in gain and bias
    np.testing.assert_allclose(m1.actuator_gainprm[:, 2], k_m * m0.actuator_gainprm[:, 2], rtol=1e-14)
    np.testing.assert_allclose(m1.actuator_biasprm[:, 2], k_m * m0.actuator_biasprm[:, 2], rtol=1e-14)
    # optimal length and offset (tendon slack) ~ length; normalised parameters unchanged
    L0a, LTa = _L0_LT(m0)
    L0b, LTb = _L0_LT(m1)
    np.testing.assert_allclose(L0b, s * L0a, rtol=1e-12)
    np.testing.assert_allclose(LTb, s * LTa, rtol=1e-12, atol=1e-15)
    others = [0, 1, 3, 4, 5, 6, 7, 8]
    np.testing.assert_array_equal(m1.actuator_gainprm[:, others], m0.actuator_gainprm[:, others])
    # the normalised fibre length of every muscle in the default pose is what it was
    d0, d1 = myoleg.new_data(), scaled.new_data()
    mujoco.mj_forward(m0, d0)
    mujoco.mj_forward(m1, d1)
    np.testing.assert_allclose((d1.actuator_length - LTb) / L0b, (d0.actuator_length - LTa) / L0a, atol=1e-12)
    # moment arms ~ length about rotations (m/rad); about slide dofs they are dimensionless and stay
    slide_dof = m0.jnt_type[m0.dof_jntid] == mujoco.mjtJoint.mjJNT_SLIDE
    expected = myoleg.muscle_moment_arms(d0) * np.where(slide_dof, 1.0, s)
    np.testing.assert_allclose(scaled.muscle_moment_arms(d1), expected, atol=1e-12)
    # and the same activation gives a force ~ mass (passive and active parts alike)
    d0.act[:] = d1.act[:] = 0.5
    mujoco.mj_forward(m0, d0)
    mujoco.mj_forward(m1, d1)
    np.testing.assert_allclose(d1.actuator_force, k_m * d0.actuator_force, rtol=1e-10)
    assert np.all(np.isfinite(d1.qacc))


def test_strength_exponent_two_thirds(myoleg):
    subject = SubjectScale(mass_kg=100.0, height_m=1.8)
    scaled = scale_model(myoleg, subject, strength_exponent=2 / 3)
    k = (100.0 / myoleg.info.mass_kg) ** (2 / 3)
    np.testing.assert_allclose(scaled.model.actuator_gainprm[:, 2], k * myoleg.model.actuator_gainprm[:, 2],
                               rtol=1e-14)
    assert scaled.scale_factors.force_factor == pytest.approx(k)
    with pytest.raises(ValueError, match="strength_exponent"):
        scale_model(myoleg, subject, strength_exponent=3.0)


def test_template_is_untouched_and_a_scaled_model_can_be_scaled_again(myoleg, myoleg_big):
    scaled, _ = myoleg_big
    fresh = load_model("myoleg")
    for attr in ("body_pos", "body_mass", "body_inertia", "site_pos", "actuator_lengthrange", "actuator_gainprm"):
        np.testing.assert_array_equal(getattr(myoleg.model, attr), getattr(fresh.model, attr))
    again = scale_model(scaled, SubjectScale(mass_kg=myoleg.info.mass_kg, height_m=myoleg.info.height_m))
    np.testing.assert_allclose(again.model.body_pos, myoleg.model.body_pos, atol=1e-14)
    np.testing.assert_allclose(again.model.body_mass, myoleg.model.body_mass, rtol=1e-12)
    np.testing.assert_allclose(again.model.actuator_lengthrange, myoleg.model.actuator_lengthrange, rtol=1e-12)


def test_myofullbody_scales_and_runs():
    fb = load_model("myofullbody")
    subject = SubjectScale(mass_kg=62.0, height_m=1.58)
    scaled = scale_model(fb, subject)
    m0, m1 = fb.model, scaled.model
    s = subject.height_m / fb.info.height_m
    assert m1.body_subtreemass[0] == pytest.approx(62.0, rel=1e-12)
    np.testing.assert_allclose(m1.body_pos, s * m0.body_pos, atol=1e-14)
    np.testing.assert_allclose(m1.actuator_lengthrange, s * m0.actuator_lengthrange, rtol=1e-14)
    # MyoFullBody's SUPSP has different F0 in gain and bias: both scale
    k_m = 62.0 / fb.info.mass_kg
    np.testing.assert_allclose(m1.actuator_biasprm[:, 2], k_m * m0.actuator_biasprm[:, 2], rtol=1e-14)
    # the boundinertia-floored phantom bodies and the balanced lumbar inertia scale by m L^2 like the rest
    np.testing.assert_allclose(m1.body_inertia, m0.body_inertia * k_m * s * s, rtol=1e-14)
    assert m1.key_qpos[0, 2] == pytest.approx(s * m0.key_qpos[0, 2])  # keyframe root height
    d = scaled.new_data()
    d.act[:] = 0.2
    mujoco.mj_forward(m1, d)
    assert np.all(np.isfinite(d.qacc)) and np.all(np.isfinite(d.actuator_force))
    mujoco.mj_step(m1, d)
    assert np.all(np.isfinite(d.qpos))


# --------------------------------------------------------------------------------------------------
# static trial
# --------------------------------------------------------------------------------------------------


def _static_trial(myoleg: MusculoskeletalModel, s_h: float, thigh_r: float, shank_r: float) -> dict:
    """Markers placed on the joint centres of the template scaled by s_h, with the right thigh and shank stretched."""
    m = myoleg.model
    d = myoleg.new_data()
    mujoco.mj_kinematics(m, d)
    x = {b: d.xpos[m.body(b).id].copy() for b in ("femur_r", "tibia_r", "talus_r", "femur_l", "tibia_l", "talus_l")}
    lat = np.array([0.05, 0.0, 0.0])
    markers = {}
    for side, ft, fs in (("r", thigh_r, shank_r), ("l", 1.0, 1.0)):
        S = side.upper()
        hjc = x[f"femur_{side}"] * s_h
        knee = hjc + (x[f"tibia_{side}"] - x[f"femur_{side}"]) * s_h * ft
        ankle = knee + (x[f"talus_{side}"] - x[f"tibia_{side}"]) * s_h * fs
        markers[f"{S}HJC"] = hjc
        markers[f"{S}KneeLateral"], markers[f"{S}KneeMedial"] = knee + lat, knee - lat
        # a static trial of 20 frames with a gap: averaged ignoring NaN
        frames = np.tile(ankle + lat, (20, 1))
        frames[3] = np.nan
        markers[f"{S}AnkleLateral"], markers[f"{S}AnkleMedial"] = frames, ankle - lat
    return markers


def test_static_trial_gives_per_segment_factors(myoleg):
    subject = SubjectScale(mass_kg=80.0, height_m=1.75)
    s_h = subject.height_m / myoleg.info.height_m
    markers = _static_trial(myoleg, s_h, thigh_r=1.10, shank_r=0.95)
    scaled = scale_model(myoleg, subject, markers)
    f = scaled.scale_factors
    assert not f.uniform
    assert f.length_by_body["femur_r"] == pytest.approx(1.10 * s_h)
    assert f.length_by_body["patella_r"] == pytest.approx(1.10 * s_h)
    assert f.length_by_body["tibia_r"] == pytest.approx(0.95 * s_h)
    assert f.length_by_body["femur_l"] == pytest.approx(s_h) and f.length_by_body["calcn_r"] == s_h
    assert set(f.measured) == {m.name for m in LOWER_LIMB_MARKER_MAP}
    m0, m1 = myoleg.model, scaled.model
    d = scaled.new_data()
    mujoco.mj_forward(m1, d)
    thigh = np.linalg.norm(d.xpos[m1.body("tibia_r").id] - d.xpos[m1.body("femur_r").id])
    shank = np.linalg.norm(d.xpos[m1.body("talus_r").id] - d.xpos[m1.body("tibia_r").id])
    assert thigh == pytest.approx(f.measured["thigh_r"][0], rel=1e-12)
    assert shank == pytest.approx(f.measured["shank_r"][0], rel=1e-12)
    assert m1.body_subtreemass[0] == pytest.approx(80.0, rel=1e-12)
    # inertia with each body's own length factor
    k_m = 80.0 / myoleg.info.mass_kg
    for b in ("femur_r", "tibia_r", "femur_l"):
        i = m0.body(b).id
        np.testing.assert_allclose(m1.body_inertia[i], m0.body_inertia[i] * k_m * f.length_by_body[b] ** 2,
                                   rtol=1e-12)
    # muscle lengths follow the muscle-tendon length ratio: soleus spans the shank, the vasti thigh + shank
    d0 = myoleg.new_data()
    mujoco.mj_forward(m0, d0)
    ratio = d.actuator_length / d0.actuator_length
    np.testing.assert_allclose(m1.actuator_lengthrange, m0.actuator_lengthrange * ratio[:, None], rtol=1e-12)
    names = myoleg.info.muscle_names
    assert ratio[names.index("soleus_r")] / s_h == pytest.approx(0.95, abs=0.01)
    assert 0.95 < ratio[names.index("vasint_r")] / s_h < 1.10
    assert ratio[names.index("soleus_l")] == pytest.approx(s_h, rel=1e-9)
    # the right knee's translation couplings follow the femur's factor
    e = m0.eq_obj1id == m0.joint("knee_angle_translation2_r").id
    np.testing.assert_allclose(m1.eq_data[e, :5], m0.eq_data[e, :5] * f.length_by_body["femur_r"], rtol=1e-12)
    assert np.all(np.isfinite(d.qacc))


def test_static_trial_errors(myoleg):
    subject = SubjectScale(mass_kg=80.0, height_m=1.75)
    s_h = subject.height_m / myoleg.info.height_m
    markers = _static_trial(myoleg, s_h, 1.0, 1.0)
    with pytest.raises(ValueError, match="without static_markers"):
        scale_model(myoleg, subject, None, LOWER_LIMB_MARKER_MAP)
    missing = {k: v for k, v in markers.items() if k != "RKneeMedial"}
    with pytest.raises(KeyError, match="RKneeMedial"):
        scale_model(myoleg, subject, missing)
    in_mm = {k: np.asarray(v) * 1000.0 for k, v in markers.items()}
    with pytest.raises(ValueError, match="metres"):
        scale_model(myoleg, subject, in_mm)
    bad = dict(markers, RHJC=np.array([np.nan, 0.0, 1.0]))
    with pytest.raises(ValueError, match="RHJC"):
        scale_model(myoleg, subject, bad)
    twice = (LOWER_LIMB_MARKER_MAP[0], LOWER_LIMB_MARKER_MAP[0])
    with pytest.raises(ValueError, match="two segment measures"):
        scale_model(myoleg, subject, markers, twice)
    wrong_body = (SegmentMeasure("thigh_r", ("RHJC",), ("RKneeLateral",), "femur_r", "tibia_r", ("femurr",)),)
    with pytest.raises(KeyError, match="femur_r"):
        scale_model(myoleg, subject, markers, wrong_body)


# --------------------------------------------------------------------------------------------------
# a model from a path: no height to measure, a mesh shared by two segments
# --------------------------------------------------------------------------------------------------


def test_path_model_needs_a_template_height_and_duplicates_shared_meshes(tmp_path):
    p = tmp_path / "two_link.xml"
    p.write_text(TWO_LINK_XML)
    tmpl = load_model(p)
    subject = SubjectScale(mass_kg=30.0, height_m=1.0)
    with pytest.raises(ValueError, match="template_height_m"):
        scale_model(tmpl, subject)
    markers = {"HIP": np.array([0.0, 0.0, 1.0]), "KNEE": np.array([0.0, 0.0, 0.52])}  # thigh 0.48 m (model 0.4)
    measure = (SegmentMeasure("thigh", ("HIP",), ("KNEE",), "thigh", "shank", ("thigh",)),)
    scaled = scale_model(tmpl, subject, markers, measure, template_height_m=1.25)  # s_h = 0.8, thigh 1.2
    f = scaled.scale_factors
    assert (f.height_factor, f.length_by_body["thigh"], f.length_by_body["shank"]) == pytest.approx((0.8, 1.2, 0.8))
    m0, m1 = tmpl.model, scaled.model
    # the mesh "bone" used by both segments now exists at two scales
    assert m1.nmesh == 2
    for b, fb in (("thigh", 1.2), ("shank", 0.8)):
        g = [i for i in range(m1.ngeom) if m1.geom_bodyid[i] == m1.body(b).id and
             m1.geom_type[i] == mujoco.mjtGeom.mjGEOM_MESH][0]
        np.testing.assert_allclose(_mesh_in_body(m1, g), fb * _mesh_in_body(m0, g), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(m1.geom_pos[g], fb * m0.geom_pos[g], atol=1e-12)
    assert m1.body("shank").pos[2] == pytest.approx(1.2 * m0.body("shank").pos[2])  # in the thigh's frame
    assert m1.body("foot").pos[2] == pytest.approx(0.8 * m0.body("foot").pos[2])  # in the shank's frame
    assert m1.body("thigh").pos[2] == pytest.approx(0.8)  # the root stands with the height factor
    # slide coupling y = a0 + a1 x + a2 x^2 (y in metres of the thigh, x in radians)
    np.testing.assert_allclose(m1.eq_data[0, :3], 1.2 * m0.eq_data[0, :3], rtol=1e-12)
    np.testing.assert_allclose(m1.jnt_range[m1.joint("knee_slide").id], 1.2 * m0.jnt_range[m0.joint("knee_slide").id])
    # muscle: lengthrange follows its path length between the two segments
    d0, d1 = tmpl.new_data(), scaled.new_data()
    mujoco.mj_forward(m0, d0)
    mujoco.mj_forward(m1, d1)
    r = d1.actuator_length[0] / d0.actuator_length[0]
    assert 0.8 < r < 1.2
    np.testing.assert_allclose(m1.actuator_lengthrange[0], r * m0.actuator_lengthrange[0], rtol=1e-12)
    assert m1.body_subtreemass[0] == pytest.approx(30.0, rel=1e-12)
    assert np.all(np.isfinite(d1.qacc))


def test_compute_scale_factors_matches_scale_model(myoleg):
    subject = SubjectScale(mass_kg=70.0, height_m=1.7)
    f = compute_scale_factors(myoleg, subject)
    assert f.uniform and f.height_factor == pytest.approx(1.7 / myoleg.info.height_m)
    assert f.mass_factor == pytest.approx(70.0 / myoleg.info.mass_kg)
    assert "Winter" in f.template_height_basis
    g = compute_scale_factors(myoleg, subject, template_height_m=1.8)
    assert g.height_factor == pytest.approx(1.7 / 1.8) and g.template_height_basis == "given by the caller"
    with pytest.raises(TypeError, match="SubjectScale"):
        compute_scale_factors(myoleg, (70.0, 1.7))  # type: ignore[arg-type]
