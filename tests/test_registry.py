"""models.body.registry: named models load with the facts in STACK.md, bad names are rejected clearly, moment arms are
MuJoCo's length Jacobian with the anatomical sign (checked against finite differences)."""

from __future__ import annotations

import dataclasses
import textwrap

import mujoco
import numpy as np
import pytest

pytest.importorskip("myo_sim")
pytest.importorskip("musclemimic_models")

from models.body import registry  # noqa: E402
from models.body.registry import MODEL_NAMES, ModelInfo, MusculoskeletalModel, load_model  # noqa: E402

from _support import TWO_LINK_XML  # noqa: E402


@pytest.fixture(scope="module")
def myoleg() -> MusculoskeletalModel:
    return load_model("myoleg")


@pytest.fixture(scope="module")
def myofullbody() -> MusculoskeletalModel:
    return load_model("myofullbody")


@pytest.fixture(scope="module")
def bimanual() -> MusculoskeletalModel:
    return load_model("myobimanualarm")


# --------------------------------------------------------------------------------------------------
# facts
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, nq, nv, n_muscles, mass_kg, free_root",
    [
        ("myoleg", 35, 34, 80, 75.0, True),
        ("myofullbody", 129, 128, 416, 84.3, True),
        ("myobimanualarm", 76, 76, 126, 16.5, False),
    ],
)
def test_named_models_have_the_measured_facts(name, nq, nv, n_muscles, mass_kg, free_root, request):
    mm = request.getfixturevalue({"myoleg": "myoleg", "myofullbody": "myofullbody",
                                  "myobimanualarm": "bimanual"}[name])
    i = mm.info
    assert isinstance(i, ModelInfo)
    assert (i.name, i.nq, i.nv, i.n_muscles, i.free_root) == (name, nq, nv, n_muscles, free_root)
    assert i.n_actuators == mm.model.nu
    assert i.mass_kg == pytest.approx(mass_kg, abs=0.05)
    assert len(i.muscle_names) == n_muscles == mm.muscle_ids.size
    assert len(i.joint_names) == mm.model.njnt
    assert i.height_m is not None and 1.6 < i.height_m < 1.8
    assert i.source
    with pytest.raises(dataclasses.FrozenInstanceError):
        i.nq = 0  # type: ignore[misc]


def test_heights_follow_the_documented_rules(myoleg, myofullbody, bimanual):
    # MyoFullBody: top of the head minus the sole; MyoLeg: hip joint centre height over Winter's 0.530
    h, basis = registry.measure_height(myofullbody.model)
    assert myofullbody.info.height_m == pytest.approx(h) and "stature" in basis
    assert h == pytest.approx(registry.MYOFULLBODY_STATURE_M, abs=1e-3)
    d = myoleg.new_data()
    mujoco.mj_kinematics(myoleg.model, d)
    hip = np.mean([d.xpos[myoleg.body_id(b)][2] for b in ("femur_r", "femur_l")])
    sole = hip - registry.WINTER_TROCHANTER_HEIGHT_RATIO * myoleg.info.height_m
    assert 0.03 < sole < 0.07  # the foot contact geometry sits a few cm above z = 0 in qpos0
    assert "Winter" in myoleg.info.height_basis
    assert registry.measure_height(myoleg.model, "winter")[0] == myoleg.info.height_m
    # MyoLeg's passive torso carries the same head as MyoFullBody: by geometry it is as tall, but its legs are short
    # for that stature (hip at 0.504 H), so the Winter rule gives it 1.638 m
    assert registry.measure_height(myoleg.model, "stature")[0] == pytest.approx(h, abs=1e-3)
    assert registry.measure_height(myoleg.model)[0] == pytest.approx(h, abs=1e-3)  # "auto" sees the head
    assert myoleg.info.height_m == pytest.approx(1.638, abs=1e-3)
    with pytest.raises(ValueError, match="'bogus'"):
        registry.measure_height(myoleg.model, "bogus")
    # MyoBimanualArm shares MyoFullBody's stature because its arms are the same bodies at the same places
    assert bimanual.info.height_m == registry.MYOFULLBODY_STATURE_M
    for b in range(2, bimanual.model.nbody):
        name = bimanual.model.body(b).name
        np.testing.assert_allclose(bimanual.model.body_pos[b], myofullbody.model.body(name).pos, atol=1e-12)


def test_list_models_reports_every_named_model():
    infos = registry.list_models()
    assert [i.name for i in infos] == list(MODEL_NAMES)
    assert all(i.nq > 0 and i.nv > 0 and i.n_muscles > 0 and i.mass_kg > 0 for i in infos)
    assert all(registry.load_time_s(n) is not None for n in MODEL_NAMES)


# --------------------------------------------------------------------------------------------------
# names and paths
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["myolegs", "gait2392", "MyoArm"])
def test_unknown_name_is_rejected_with_the_valid_names(bad):
    with pytest.raises(ValueError) as e:
        load_model(bad)
    msg = str(e.value)
    assert repr(bad) in msg
    for n in MODEL_NAMES:
        assert n in msg


@pytest.mark.parametrize("name, shown", [("ulbs-112", "ULBS-112"), ("ULBS-112", "ULBS-112"),
                                         ("ms-emulator", "MS-Emulator"), ("MS_Emulator", "MS-Emulator")])
def test_unpublished_seed_models_are_rejected_as_unpublished(name, shown):
    with pytest.raises(ValueError, match="not been published") as e:
        load_model(name)
    assert shown in str(e.value) and repr(name) in str(e.value)


def test_names_are_case_insensitive(myoleg):
    assert load_model("MyoLeg").info == myoleg.info


def test_missing_path_is_a_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.xml"):
        load_model(str(tmp_path / "nowhere.xml"))


def test_path_model_loads_and_one_without_muscles_is_rejected(tmp_path):
    p = tmp_path / "two_link.xml"
    p.write_text(TWO_LINK_XML)
    mm = load_model(p)
    assert (mm.info.name, mm.info.n_muscles, mm.info.free_root, mm.info.nq) == ("two_link", 1, True, 9)
    assert mm.info.height_m is None and "femur" in mm.info.height_basis
    q = tmp_path / "no_muscles.xml"
    q.write_text("<mujoco><worldbody><body><freejoint/><geom size='0.1'/></body></worldbody></mujoco>")
    with pytest.raises(ValueError, match="no muscle actuators"):
        load_model(q)


def test_cached_loads_are_independent_copies(myoleg):
    a, b = load_model("myoleg"), load_model("myoleg")
    assert a.model is not b.model and a.spec is not b.spec
    a.model.opt.timestep = 0.123
    a.model.body_mass[2] = 99.0
    assert b.model.opt.timestep != 0.123 and b.model.body_mass[2] != 99.0
    assert myoleg.model.body_mass[2] != 99.0


def test_loading_myoleg_writes_no_mujoco_log(tmp_path, monkeypatch):
    # myo-sim attaches the legs with an empty prefix; MuJoCo would log that into ./MUJOCO_LOG.TXT on every build
    monkeypatch.chdir(tmp_path)
    load_model("myoleg", cache=False)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


# --------------------------------------------------------------------------------------------------
# lookups
# --------------------------------------------------------------------------------------------------


def test_lookups(myoleg):
    m = myoleg.model
    assert myoleg.joint_qpos_index("root") == 0 and myoleg.joint_dof_index("root") == 0
    j = m.joint("knee_angle_r").id
    assert myoleg.joint_qpos_index("knee_angle_r") == m.jnt_qposadr[j]
    assert myoleg.joint_dof_index("knee_angle_r") == m.jnt_dofadr[j]
    assert myoleg.body_id("femur_r") == m.body("femur_r").id
    s = m.site(0).name
    assert myoleg.site_id(s) == 0
    assert myoleg.subtree_mass("femur_r") == pytest.approx(m.body_subtreemass[m.body("femur_r").id])
    assert myoleg.subtree_mass("world") == pytest.approx(myoleg.info.mass_kg)
    assert myoleg.subtree_mass("femur_r") > m.body_mass[m.body("femur_r").id]
    with pytest.raises(KeyError, match="femur_r"):
        myoleg.body_id("femurr")
    with pytest.raises(KeyError, match="knee_angle_r"):
        myoleg.joint_qpos_index("knee_angle")
    d = myoleg.new_data()
    np.testing.assert_array_equal(d.qpos, m.qpos0)


# --------------------------------------------------------------------------------------------------
# moment arms
# --------------------------------------------------------------------------------------------------


def _random_pose(mm: MusculoskeletalModel, seed: int) -> np.ndarray:
    m = mm.model
    rng = np.random.default_rng(seed)
    q = m.qpos0.copy()
    for j in range(m.njnt):
        if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE and m.jnt_limited[j]:
            lo, hi = m.jnt_range[j]
            q[m.jnt_qposadr[j]] = lo + (hi - lo) * rng.uniform(0.25, 0.75)
    return q


def _fd_moment_arms(mm: MusculoskeletalModel, q: np.ndarray, dofs, h: float = 1e-6) -> np.ndarray:
    """-d(muscle length)/dq by central differences along each dof (mj_integratePos for ball/free dofs)."""
    m = mm.model
    d = mujoco.MjData(m)
    out = np.empty((mm.muscle_ids.size, len(dofs)))
    for c, k in enumerate(dofs):
        lengths = []
        for sign in (1.0, -1.0):
            dq = np.zeros(m.nv)
            dq[k] = 1.0
            qq = q.copy()
            mujoco.mj_integratePos(m, qq, dq, sign * h)
            d.qpos[:] = qq
            mujoco.mj_fwdPosition(m, d)
            lengths.append(d.actuator_length[mm.muscle_ids].copy())
        out[:, c] = -(lengths[0] - lengths[1]) / (2 * h)
    return out


def _assert_close_rel(analytic: np.ndarray, fd: np.ndarray) -> None:
    big = np.abs(fd) > 1e-3
    assert big.sum() > 10
    rel = np.abs(analytic[big] - fd[big]) / np.abs(fd[big])
    assert rel.max() < 1e-4, rel.max()
    assert np.abs(analytic[~big] - fd[~big]).max() < 1e-7


def test_moment_arms_match_finite_differences_myoleg(myoleg):
    m = myoleg.model
    q = _random_pose(myoleg, 1)
    d = myoleg.new_data()
    d.qpos[:] = q
    mujoco.mj_forward(m, d)
    r = myoleg.muscle_moment_arms(d)
    assert r.shape == (80, 34)
    _assert_close_rel(r, _fd_moment_arms(myoleg, q, range(m.nv)))  # every muscle, every dof (free root included)
    # the sign: MuJoCo's actuator_moment is +dl/dq; ours is the anatomical -dl/dq
    np.testing.assert_array_equal(r, -myoleg.actuator_moment_dense(d)[myoleg.muscle_ids])
    # and tau = r * tension: qfrc_actuator = actuator_moment^T force with force < 0 for a pulling muscle
    d.ctrl[:] = 0.4
    d.act[:] = 0.4
    mujoco.mj_forward(m, d)
    assert np.all(d.actuator_force[myoleg.muscle_ids] <= 0.0)
    np.testing.assert_allclose(d.qfrc_actuator, r.T @ -d.actuator_force, atol=1e-9)


def test_moment_arm_signs_are_anatomical(myoleg):
    """Knee (knee_angle_r > 0 is flexion): hamstrings +, vasti -; ankle (dorsiflexion +): soleus -, tibialis +."""
    d = myoleg.new_data()
    d.qpos[myoleg.joint_qpos_index("knee_angle_r")] = 1.5
    myoleg.apply_joint_couplings(d.qpos)
    mujoco.mj_forward(myoleg.model, d)
    names = myoleg.info.muscle_names
    knee = myoleg.joint_dof_index("knee_angle_r")
    ankle = myoleg.joint_dof_index("ankle_angle_r")
    r = myoleg.muscle_moment_arms(d)
    rc = myoleg.coupled_muscle_moment_arms(d)
    for rr in (r, rc):
        assert rr[names.index("semiten_r"), knee] > 0.02 and rr[names.index("bflh_r"), knee] > 0.02
        assert rr[names.index("vasint_r"), knee] < -0.02 and rr[names.index("recfem_r"), knee] < -0.02
    # the patella coupling changes the vasti's knee moment arm by ~0.02 m at this flexion
    assert rc[names.index("vasint_r"), knee] - r[names.index("vasint_r"), knee] > 0.015
    assert r[names.index("soleus_r"), ankle] < -0.02 and r[names.index("tibant_r"), ankle] > 0.02


def test_coupled_moment_arms_match_finite_differences_along_the_coupling(myoleg):
    m = myoleg.model
    couplings = myoleg._joint_couplings()
    assert len(couplings) == 14  # 7 per knee: 2 translations, 2 rotations, 3 patella

    def pose(x: float) -> np.ndarray:
        q = m.qpos0.copy()
        q[myoleg.joint_qpos_index("knee_angle_r")] = x
        for _, _, qy, qx, a in couplings:  # written out independently of apply_joint_couplings
            q[qy] = m.qpos0[qy] + a @ (q[qx] - m.qpos0[qx]) ** np.arange(5)
        return q

    q = m.qpos0.copy()
    q[myoleg.joint_qpos_index("knee_angle_r")] = 0.7
    np.testing.assert_allclose(myoleg.apply_joint_couplings(q), pose(0.7), atol=1e-15)
    d = myoleg.new_data()
    d.qpos[:] = pose(0.7)
    mujoco.mj_forward(m, d)
    assert np.abs(d.efc_pos[d.efc_type == mujoco.mjtConstraint.mjCNSTR_EQUALITY]).max() < 1e-12

    d = myoleg.new_data()
    d.qpos[:] = pose(0.7)
    mujoco.mj_forward(m, d)
    rc = myoleg.coupled_muscle_moment_arms(d)
    h, dd = 1e-6, mujoco.MjData(m)
    lengths = []
    for x in (0.7 + h, 0.7 - h):
        dd.qpos[:] = pose(x)
        mujoco.mj_fwdPosition(m, dd)
        lengths.append(dd.actuator_length[myoleg.muscle_ids].copy())
    fd = -(lengths[0] - lengths[1]) / (2 * h)
    _assert_close_rel(rc[:, [myoleg.joint_dof_index("knee_angle_r")]], fd[:, None])
    assert np.all(rc[:, [c[0] for c in couplings]] == 0.0)


def test_moment_arms_match_finite_differences_myofullbody(myofullbody):
    mm = myofullbody
    q = _random_pose(mm, 2)
    d = mm.new_data()
    d.qpos[:] = q
    mujoco.mj_forward(mm.model, d)
    r = mm.muscle_moment_arms(d)
    assert r.shape == (416, 128)
    joints = ["knee_angle_r", "hip_flexion_l", "ankle_angle_r", "elbow_flex_r", "shoulder_elv_l", "L4_L5_FE",
              "flex_extension", "mcp2_flexion_r"]
    dofs = [mm.joint_dof_index(j) for j in joints]
    _assert_close_rel(r[:, dofs], _fd_moment_arms(mm, q, dofs))


def test_moment_arms_into_a_preallocated_array(myoleg):
    d = myoleg.new_data()
    mujoco.mj_forward(myoleg.model, d)
    out = np.full((80, 34), np.nan)
    assert myoleg.muscle_moment_arms(d, out) is out
    np.testing.assert_array_equal(out, myoleg.muscle_moment_arms(d))


def test_moment_arms_with_non_muscle_actuators(tmp_path):
    xml = TWO_LINK_XML.replace("</actuator>", '<motor name="knee_motor" joint="knee" gear="50"/></actuator>')
    p = tmp_path / "two_link_motor.xml"
    p.write_text(xml)
    mm = load_model(p, cache=False)
    assert (mm.info.n_muscles, mm.info.n_actuators) == (1, 2)
    d = mm.new_data()
    d.qpos[mm.joint_qpos_index("knee")] = -0.5
    mujoco.mj_forward(mm.model, d)
    r = mm.muscle_moment_arms(d)
    assert r.shape == (1, mm.model.nv)
    assert np.abs(r - _fd_moment_arms(mm, d.qpos.copy(), range(mm.model.nv))).max() < 1e-8
    assert mm.actuator_moment_dense(d)[1, mm.joint_dof_index("knee")] == pytest.approx(50.0)


def test_mujoco_log_configuration_is_restored_after_a_build():
    before = mujoco.MjLogConfig.get()
    load_model("myobimanualarm", cache=False)
    after = mujoco.MjLogConfig.get()
    assert (after.logto_file, after.logto_console, after.logfile) == (before.logto_file, before.logto_console,
                                                                      before.logfile)


def test_textures_are_stripped_and_physics_unchanged():
    """The registry compiles without textures (not rendered; most of a compile): every other array of the
    compiled model equals the textured compile's, except the texture arrays, material texture ids and name
    addresses."""
    import mujoco

    from models.body.registry import _BUILDERS, _compile, load_model, strip_textures

    spec, _ = _BUILDERS["myoleg"]()
    textured = _compile(spec.copy())
    assert textured.ntex > 0
    stripped_spec = spec.copy()
    assert strip_textures(stripped_spec) == textured.ntex
    plain = _compile(stripped_spec)
    assert plain.ntex == 0 and load_model("myoleg").model.ntex == 0
    allowed = ("tex_", "mat_texid", "name_", "names_map")
    differ = []
    for f in dir(textured):
        a = getattr(textured, f, None)
        if f.startswith("_") or not isinstance(a, np.ndarray) or f.startswith(allowed):
            continue
        b = getattr(plain, f)
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
            differ.append(f)
    assert differ == []
    assert [textured.body(i).name for i in range(textured.nbody)] == [plain.body(i).name for i in range(plain.nbody)]
    assert [mujoco.mj_id2name(textured, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(textured.nu)] == \
        [mujoco.mj_id2name(plain, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(plain.nu)]
