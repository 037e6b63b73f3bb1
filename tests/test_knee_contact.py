"""Tibiofemoral contact (models.muscles.knee_contact): analytic static cases, split formula, signs, in-vivo validation."""
import mujoco
import numpy as np
import pytest

from models.dynamics.couplings import CoordinateCouplings
from models.dynamics.wrenches import ExternalWrenchTrial
from models.muscles.knee_contact import (KneeContact, knee_contact_from_analysis, medial_lateral_split, opensim_so_tensions,
                                 quadriceps_hamstrings_cocontraction, read_in_vivo, tibia_scale,
                                 validate_against_in_vivo)
from models.io.lab_files import shared_data_dir
from models.body.registry import load_model

G = 9.80665
PS = shared_data_dir() / "GC5_PS"
needs_data = pytest.mark.skipif(not (PS / "in_vivo" / "PS_ngait_og_ss1_eTibia_101pt.csv").exists(),
                                reason=f"shared data absent at {PS}")


@pytest.fixture(scope="module")
def myoleg():
    return load_model("myoleg").model


def _static_pose(m):
    q = m.qpos0.copy()
    CoordinateCouplings(m).apply(q)
    d = mujoco.MjData(m)
    d.qpos[:] = q
    mujoco.mj_fwdPosition(m, d)
    return q, d


def _run_static(m, side, force, point, tensions=None, names=None):
    q, _ = _static_pose(m)
    kc = KneeContact(m, side, body_mass_kg=75.0)
    ext = ExternalWrenchTrial(f"calcn_{side[0]}", force[None, :], point[None, :], np.zeros((1, 3)))
    z = np.zeros((1, m.nv))
    t = None if tensions is None else np.asarray(tensions, dtype=float)[None, :]
    return kc, kc.run(q[None, :], z, z, [ext], t, names)


def _analytic_parent_wrench(m, d, side, force, point):
    """Static balance of the tibia subtree: parent force/moment (about the tibia origin) in the tibia frame."""
    b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"tibia_{side[0]}")
    mass = m.body_subtreemass[b]
    o, c, R = d.xpos[b], d.subtree_com[b], d.xmat[b].reshape(3, 3)
    w = np.array([0.0, 0.0, -G * mass])
    F = -force - w
    M = -np.cross(point - o, force) - np.cross(c - o, w)
    return F @ R, M @ R, o, R


def test_static_contact_equals_analytic_without_and_with_muscle(myoleg):
    m = myoleg
    q, d = _static_pose(m)
    F_ext = np.array([30.0, -20.0, 700.0])
    b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "tibia_l")
    p = d.xpos[b] + np.array([0.01, 0.02, -0.45])
    Fp, Mp, o, R = _analytic_parent_wrench(m, d, "left", F_ext, p)
    kc, r = _run_static(m, "left", F_ext, p)
    np.testing.assert_allclose(r.contact_force_n[0], Fp, atol=1e-6)
    assert r.axial_n[0] == pytest.approx(-Fp[1], abs=1e-6)
    # the tibia is close to vertical in the default pose: compression ~ GRF minus the subtree weight
    assert r.axial_n[0] == pytest.approx(700.0 - G * m.body_subtreemass[b], rel=0.05)
    assert r.total_n[0] == pytest.approx(np.linalg.norm(Fp), abs=1e-6)
    assert r.frontal_moment_nm[0] == pytest.approx(Mp[0], abs=1e-6)          # left: M_f = +M_x
    # + 1000 N in vasmed_l: the patellar-tendon segment (last patella site -> tibia site) pulls the tibia
    t = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_TENDON, "vasmed_l_tendon")
    sites = [int(m.wrap_objid[w]) for w in range(m.tendon_adr[t], m.tendon_adr[t] + m.tendon_num[t])
             if m.wrap_type[w] == mujoco.mjtWrap.mjWRAP_SITE]
    assert m.body(m.site_bodyid[sites[-2]]).name == "patella_l" and m.body(m.site_bodyid[sites[-1]]).name == "tibia_l"
    a, e = d.site_xpos[sites[-1]], d.site_xpos[sites[-2]]
    u = (e - a) / np.linalg.norm(e - a)
    f_mus, m_mus = 1000.0 * u, np.cross(a - o, 1000.0 * u)
    kc2, r2 = _run_static(m, "left", F_ext, p, [1000.0], ["vasmed_l"])
    np.testing.assert_allclose(r2.muscle_force_n[0], f_mus @ R, atol=1e-6)
    np.testing.assert_allclose(r2.contact_force_n[0], Fp - f_mus @ R, atol=1e-6)
    assert r2.frontal_moment_nm[0] == pytest.approx(Mp[0] - (m_mus @ R)[0], abs=1e-6)
    assert r2.axial_n[0] > r.axial_n[0] + 900.0          # the quadriceps compress the joint


def test_crossing_muscles_and_patella_side(myoleg):
    kc = KneeContact(myoleg, "left", body_mass_kg=75.0)
    assert set(kc.crossing_muscles) == {f"{n}_l" for n in ("bflh", "bfsh", "gaslat", "gasmed", "grac", "recfem", "sart",
                                                         "semimem", "semiten", "tfl", "vasint", "vaslat", "vasmed")}
    pat = mujoco.mj_name2id(myoleg, mujoco.mjtObj.mjOBJ_BODY, "patella_l")
    assert myoleg.body(myoleg.body_parentid[pat]).name == "femur_l" and not kc.in_tibia[pat]
    assert tibia_scale(myoleg, "left") == pytest.approx(1.0)
    assert kc.condyle_offsets_m == pytest.approx((0.02, 0.02))


@pytest.mark.parametrize("side", ["left", "right"])
def test_grf_medial_of_knee_loads_the_medial_compartment(myoleg, side):
    m = myoleg
    q, d = _static_pose(m)
    b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"tibia_{side[0]}")
    R = d.xmat[b].reshape(3, 3)
    medial = R[:, 2] if side == "left" else -R[:, 2]          # tibia z is right: medial for the left leg
    medial = medial - medial[2] * np.array([0, 0, 1.0])
    medial /= np.linalg.norm(medial)
    F = np.array([0.0, 0.0, 700.0])
    base = d.xpos[b] + np.array([0, 0, -0.45])
    _, rm = _run_static(m, side, F, base + 0.05 * medial)     # external adduction moment (GRF medial to the knee)
    _, rl = _run_static(m, side, F, base - 0.05 * medial)     # external abduction moment
    assert rm.frontal_moment_nm[0] > 20.0 and rm.medial_n[0] > rm.lateral_n[0] + 500.0
    assert rl.frontal_moment_nm[0] < -20.0 and rl.lateral_n[0] > rl.medial_n[0] + 500.0
    assert rm.medial_n[0] + rm.lateral_n[0] == pytest.approx(rm.axial_n[0])


def test_split_formula():
    med, lat = medial_lateral_split(1000.0, 0.0, 0.02, 0.02)
    assert (med, lat) == pytest.approx((500.0, 500.0))
    med, lat = medial_lateral_split(1000.0, 10.0, 0.02, 0.02)
    assert (med, lat) == pytest.approx(((1000 * 0.02 + 10) / 0.04, 1000 - 750.0))
    med, lat = medial_lateral_split(np.array([800.0]), np.array([-4.0]), 0.025, 0.015)
    np.testing.assert_allclose(med, (800 * 0.015 - 4.0) / 0.04)
    # moment balance about the centre: d_m F_med - d_l F_lat = M_f
    assert 0.025 * med[0] - 0.015 * lat[0] == pytest.approx(-4.0)
    with pytest.raises(ValueError, match="condyle offsets"):
        medial_lateral_split(1.0, 0.0, 0.0, 0.02)


def test_cocontraction_rudolph():
    names = ["vasmed_l", "vaslat_l", "vasint_l", "recfem_l", "semimem_l", "semiten_l", "bflh_l", "bfsh_l", "vasmed_r"]
    a = np.array([[0.4] * 4 + [0.2] * 4 + [1.0],
                  [0.0] * 4 + [0.3] * 4 + [1.0],
                  [0.0] * 9])
    cci = quadriceps_hamstrings_cocontraction(a, names, "left")
    np.testing.assert_allclose(cci, [0.2 / 0.4 * 0.6, 0.0, 0.0])
    with pytest.raises(KeyError):
        quadriceps_hamstrings_cocontraction(a, names, "right")


# What the chain achieves against the PS implant today (measured 2026-12-07 by running the fixture below on
# ss1 / ss3 / ss8, 75 kg, measured plates): per trial and compartment (RMSE in BW, Pearson r^2, coefficient of
# determination R^2, our peak in BW). "ours" = our static optimisation; "opensim_so" = the contact stage fed
# OpenSim's SO tensions of the same trial. The implant's peaks (BW): total 2.188 / 2.470 / 2.331.
ACHIEVED = {   # 2026-12-07 (second): MyoLeg calibrated to GC5.osim, contact points about the epicondyle midpoint
    "ours": {      # (models/muscles/condyle_geometry.py; medial 0.357/0.427/0.371 and lateral 0.305/0.266/0.198 before)
        1: {"total": (0.301, 0.884, 0.848, 2.480), "medial": (0.186, 0.923, 0.908, 1.573),
            "lateral": (0.248, 0.537, 0.452, 1.171)},
        3: {"total": (0.538, 0.766, 0.478, 3.480), "medial": (0.236, 0.890, 0.825, 1.820),
            "lateral": (0.345, 0.418, -0.517, 1.755)},
        8: {"total": (0.374, 0.853, 0.767, 2.673), "medial": (0.226, 0.893, 0.879, 1.694),
            "lateral": (0.233, 0.636, 0.205, 1.081)},
    },
    "opensim_so": {
        1: {"total": (0.305, 0.851, 0.844, 2.241), "medial": (0.174, 0.926, 0.920, 1.572),
            "lateral": (0.274, 0.370, 0.330, 0.931)},
        3: {"total": (0.470, 0.755, 0.601, 3.434), "medial": (0.224, 0.895, 0.842, 1.809),
            "lateral": (0.294, 0.364, -0.102, 1.638)},
        8: {"total": (0.308, 0.856, 0.842, 2.478), "medial": (0.214, 0.900, 0.891, 1.687),
            "lateral": (0.171, 0.617, 0.573, 0.875)},
    },
}
# regression margin: each error figure (RMSE, |peak - implant peak|, 1 - r^2, 1 - R^2) may grow by at most 15 %
MARGIN = 0.15


@pytest.fixture(scope="module")
def in_vivo_ps():
    """Per trial: the KneeContactTrial of our chain, the validation of ours and of the OpenSim-SO-fed stage."""
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    params = AnalyzeParams(75.0, 1.80, "left", muscles=True)
    out = {}
    for ss in (1, 3, 8):
        kin = trial_kinematics(PS / "trc" / f"PS_ngait_og_ss{ss}.trc", PS / "model" / "GC5.osim", params)
        r = analyze_trial(None, None, params, grf_path=PS / "grf" / f"PS_ngait_og_ss{ss}_kinetics.mot", kin=kin)
        kc = knee_contact_from_analysis(kin, r)
        implant = PS / "in_vivo" / f"PS_ngait_og_ss{ss}_eTibia_101pt.csv"
        so = PS / "opensim_results_baseline" / "SO" / f"PS_ngait_og_ss{ss}_StaticOptimization_force.sto"
        T, names = opensim_so_tensions(so, r.time_s, r.muscles.muscle_names)
        vo = validate_against_in_vivo(knee_contact_from_analysis(kin, r, tension_n=T, muscle_names=names), implant)
        out[ss] = {"kin": kin, "analysis": r, "kc": kc, "so_names": names,
                   "ours": validate_against_in_vivo(kc, implant), "opensim_so": vo}
        for key in ("ours", "opensim_so"):
            print(ss, key, {k: {a: round(b, 3) for a, b in v.items()} for k, v in out[ss][key].items()})
    return out


@needs_data
def test_in_vivo_contact_is_consistent(in_vivo_ps):
    """Structure of the contact on the real trials (no accuracy figure): split, finiteness, co-contraction range."""
    for ss, d in in_vivo_ps.items():
        kc, kin, r = d["kc"], d["kin"], d["analysis"]
        h = 0.02 * tibia_scale(kin.model, "left")       # Winby's 20 mm half spacing, scaled with the tibia
        assert sum(kc.condyle_offsets_m) == pytest.approx(2 * h)
        # about GC5.osim's epicondyle midpoint, 6.8 mm medial of the scaled knee centre (OpenSim 4.6: 6.9 mm)
        assert kc.condyle_offsets_m[0] - h == pytest.approx(0.0068, abs=0.0005)
        np.testing.assert_allclose(kc.medial_n + kc.lateral_n, kc.axial_n, atol=1e-9)
        assert np.all(np.isfinite(kc.total_n))
        assert np.all(kc.axial_n <= kc.total_n * (1 + 1e-9))
        cci = quadriceps_hamstrings_cocontraction(r.muscles.activation, r.muscles.muscle_names, "left")
        assert np.all((cci >= 0) & (cci <= 2))
        assert len(d["so_names"]) == 80


@needs_data
@pytest.mark.parametrize("source", ["ours", "opensim_so"])
def test_regression_guard_in_vivo_contact_ps(in_vivo_ps, source):
    """RMSE, r^2, coefficient of determination and peak of every compartment against the implant: no figure may
    get more than 15 % worse than ACHIEVED (improvements pass; update ACHIEVED with the date when they land)."""
    slips = []
    for ss, d in in_vivo_ps.items():
        for part, (rmse, r2, cod, peak) in ACHIEVED[source][ss].items():
            v = d[source][part]
            peak_err = abs(peak - v["peak_ref_bw"])
            checks = {"rmse_bw": (v["rmse_bw"], rmse * (1 + MARGIN)),
                      "1-r2": (1 - v["r2"], (1 - r2) * (1 + MARGIN)),
                      "1-r2_cod": (1 - v["r2_cod"], (1 - cod) * (1 + MARGIN)),
                      "peak_error_bw": (abs(v["peak_bw"] - v["peak_ref_bw"]), peak_err * (1 + MARGIN))}
            slips += [f"ss{ss} {part} {k}: {got:.3f} > {bound:.3f}" for k, (got, bound) in checks.items() if got > bound]
    assert not slips, "\n".join(slips)


@needs_data
def test_anchor_opensim_so_tensions_reach_the_published_opensim_figure(in_vivo_ps):
    """Anchor: the contact stage fed OpenSim's SO tensions against the implant, mean of ss1/3/8, inside the
    published OpenSim SO + JR figure on these trials (Modenese et al. 2021, Gait Posture 88:318, Table 1:
    total RMSE 0.371 +- 0.070 BW, R^2 0.755), and the Grand Challenge medial/lateral RMS (229-312 / 238-326 N,
    Fregly et al. 2012) within their spread."""
    total = [d["opensim_so"]["total"] for d in in_vivo_ps.values()]
    mean_rmse = float(np.mean([t["rmse_bw"] for t in total]))
    mean_r2 = float(np.mean([t["r2"] for t in total]))
    print("opensim-SO-fed contact: mean total RMSE", round(mean_rmse, 3), "BW, r^2", round(mean_r2, 3))
    assert abs(mean_rmse - 0.371) <= 0.070
    assert mean_r2 >= 0.755 - 0.070
    for d in in_vivo_ps.values():
        assert d["opensim_so"]["medial"]["rmse_n"] <= 312 and d["opensim_so"]["lateral"]["rmse_n"] <= 326


@needs_data
def test_anchor_our_chain_against_the_implant(in_vivo_ps):
    """Anchor figures of our own static optimisation against the implant, reported beside their goals (total RMSE
    goal 0.25 BW: not met, see README); asserted is only what the implant shows qualitatively: the medial
    compartment carries the larger peak, and the total peak sits above body weight, as in the implant."""
    for ss, d in in_vivo_ps.items():
        kc, v = d["kc"], d["ours"]
        print(ss, "total RMSE", round(v["total"]["rmse_bw"], 3), "BW (goal 0.25; OpenSim 0.371), peak",
              round(v["total"]["peak_bw"], 2), "vs implant", round(v["total"]["peak_ref_bw"], 2), "BW")
        assert kc.medial_n.max() > kc.lateral_n.max()
        assert v["total"]["peak_ref_bw"] > 1.0 and v["total"]["peak_bw"] > 1.0


@needs_data
def test_read_in_vivo_header_with_comment():
    ref = read_in_vivo(PS / "in_vivo" / "PS_ngait_og_ss1_eTibia_101pt.csv")
    assert set(ref) == {"gait_cycle_pct", "F_medial", "F_lateral", "F_total_magnitude"}
    assert ref["gait_cycle_pct"].size == 101 and ref["gait_cycle_pct"][-1] == 100.0


@pytest.mark.parametrize("side", ["left", "right"])
def test_compiled_muscle_wrench_equals_the_python_path_walk(myoleg, side):
    """The numba kernel (kinematics + tendon wrapping only) gives the same wrench as the plain-Python path walk
    after a full ``mj_fwdPosition``, over random poses (wrapping engaged and not) and random tensions, including
    names in another order and a missing muscle (zero tension)."""
    m = myoleg
    cpl = CoordinateCouplings(m)
    kc = KneeContact(m, side, body_mass_kg=75.0)
    rng = np.random.default_rng(3)
    names = list(kc.muscle_names)
    rng.shuffle(names)
    names = names[1:]
    for _ in range(20):
        q = m.qpos0.copy()
        for j in range(m.njnt):
            if m.jnt_limited[j] and int(m.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE),):
                lo, hi = m.jnt_range[j]
                q[m.jnt_qposadr[j]] = rng.uniform(lo, hi)
        cpl.apply(q)
        T = rng.uniform(0, 2000, len(names))
        F, M = kc.muscle_wrench(q, T, names)
        Fr, Mr = kc.muscle_wrench_reference(q, T, names)
        assert np.allclose(F, Fr, atol=1e-9 * (1 + np.abs(Fr).max())) and np.allclose(M, Mr, atol=1e-9 * (1 + np.abs(Mr).max()))
        assert np.abs(Fr).max() > 1.0


@needs_data
def test_fused_chain_equals_the_separate_stages():
    """KinematicsToContact (one MuJoCo pass per stage, contact read from the SO's data) equals ID + SO +
    KneeContact.run on PS ss1 with the measured plates."""
    from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
    from models.muscles.knee_contact import KinematicsToContact
    from models.muscles.static_optimization import SOParams, StaticOptimization
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    params = AnalyzeParams(75.0, 1.80, "left")
    kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
    res = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
    ext = [ExternalWrenchTrial(f"calcn_{s[0]}", res.foot_force_n[s], res.foot_cop_m[s], res.foot_free_moment_nm[s],
                               res.time_s) for s in ("left", "right")]
    mk = kin.mapped
    so_trial, kc = KinematicsToContact(kin.model, "left", body_mass_kg=75.0).run(mk.qpos, mk.qvel, mk.qacc, ext,
                                                                                kin.time_s)
    jm = InverseDynamics(kin.model, InverseDynamicsParams(gravity_m_s2=G)).run(mk.qpos, mk.qvel, mk.qacc, ext,
                                                                       time_s=kin.time_s)
    ref_so = StaticOptimization(kin.model, SOParams()).run(mk.qpos, mk.qvel, jm.coordinate_force)
    ref = KneeContact(kin.model, "left", body_mass_kg=75.0).run(mk.qpos, mk.qvel, mk.qacc, ext, ref_so.muscle_force_n,
                                                                 ref_so.muscle_names, kin.time_s)
    assert np.allclose(so_trial.activation, ref_so.activation, atol=1e-9)
    for a, b in ((kc.total_n, ref.total_n), (kc.medial_n, ref.medial_n), (kc.lateral_n, ref.lateral_n)):
        assert np.allclose(a, b, rtol=1e-9, atol=1e-6)
    assert kc.total_bw.max() > 1.5      # a real stance peak, not zeros
