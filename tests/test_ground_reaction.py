"""Ground reaction force / CoP from kinematics (models/grf/).

Exact physics on synthetic motion (MyoLeg free fall, a MuJoCo contact simulation), the rules (feet sum, CoP inside
the support polygon, static split), the real-time path (replay equals the causal batch, stated lag, no allocation
growth), bad input, the ground-frame estimate on rotated lab markers, and validation against the GC5 force plates
(Fregly et al. 2012, J Orthop Res 30:503).  Run with ``-s`` to see the validation table.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
from dataclasses import replace

import mujoco
import numpy as np
import pytest

from _grf_helpers import coordinates_from_lab_ik, cop_inside_support, estimate_ground_frame
from models.grf.contact import FEET, FootGeometry, FootPoint
from models.grf.estimator import GroundReactionEstimator
from models.grf.model import load_myoleg
from models.grf.params import GroundReactionParams
from models.grf.records import CoordinatesFrame, CoordinatesTrial
from models.io.axes import opensim_to_z_up
from models.io.lab_files import shared_data_dir
from models.io.storage import read_mot
from models.io.trc import read_trc

G = 9.81
SUBJECT_KG = 75.0  # GC5 PS, getGCpatientInfo.m
TRIALS = (1, 3, 8)
#: The exact-split tests below pin the rule-based split (``contact_solver="share"``): since 2026-12-07 the default is
#: the feasible contact fit, which uses that split as its soft prior and, being constrained (Fz >= 0, zero force on
#: a foot off the floor), no longer sums to F_ext exactly; its own closed-form cases are in tests/test_grf_feasible.py.
SPLIT = "share"
DATA = shared_data_dir()
needs_data = pytest.mark.skipif(not (DATA / "GC5_PS" / "ik").is_dir(), reason="shared GC5 data not found")


# --------------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return load_myoleg()


@pytest.fixture(scope="module")
def ps(model):
    """{ss: (CoordinatesTrial, plates)} for the three GC5 trials."""
    out = {}
    for ss in TRIALS:
        ik = read_mot(DATA / f"GC5_PS/ik/PS_ngait_og_ss{ss}_kinematics.mot")
        out[ss] = (coordinates_from_lab_ik(ik, model), _plates(ss))
    return out


def _plates(ss: int):
    kin = read_mot(DATA / f"GC5_PS/grf/PS_ngait_og_ss{ss}_kinetics.mot")

    def g(i, k):
        return opensim_to_z_up(np.stack([kin.column(f"{i}_ground_{k}{a}") for a in "xyz"], axis=1))

    return kin.time_s, {i: (g(i, "force_v"), g(i, "force_p")) for i in (1, 2, 3)}


def _at(tt, x, t):
    return np.stack([np.interp(t, tt, x[:, a]) for a in range(x.shape[1])], axis=1)


def _plate_feet(plates, t):
    """Plate forces and CoPs per foot at times t: plate 1 = left, plates 2 + 3 = right (GC5 PS)."""
    tt, pl = plates
    fl = _at(tt, pl[1][0], t)
    f2, f3 = _at(tt, pl[2][0], t), _at(tt, pl[3][0], t)
    pl_l = _at(tt, pl[1][1], t)
    pl_r = np.where((f2[:, 2] > f3[:, 2])[:, None], _at(tt, pl[2][1], t), _at(tt, pl[3][1], t))
    return f2 + f3, fl, pl_r, pl_l


def _metrics(res, plates) -> dict[str, float]:
    """RMSE in %BW (BW = 75 kg g) over each foot's measured stance (plate Fz > 20 N), CoP RMS distance (cm) where
    the plate carries > 100 N, total force RMSE over the trial."""
    t = res.time_s
    fr, fl, pr, pl = _plate_feet(plates, t)
    bw = SUBJECT_KG * G

    def rm(e, m):
        return float(np.sqrt(np.mean(e[m] ** 2)) / bw * 100)

    sl, sr = fl[:, 2] > 20, fr[:, 2] > 20
    el, er = res.force_n[:, 1] - fl, res.force_n[:, 0] - fr
    et = res.total_force_n - (fl + fr)
    cl, cr = fl[:, 2] > 100, fr[:, 2] > 100
    return {
        "L_vz": rm(el[:, 2], sl), "L_ap": rm(el[:, 0], sl), "L_ml": rm(el[:, 1], sl),
        "R_vz": rm(er[:, 2], sr), "R_ap": rm(er[:, 0], sr),
        "T_vz": rm(et[:, 2], np.ones(t.size, bool)), "T_ap": rm(et[:, 0], np.ones(t.size, bool)),
        "T_ml": rm(et[:, 1], np.ones(t.size, bool)),
        "L_vz_mae": float(np.mean(np.abs(el[sl, 2])) / bw * 100),
        "cop_L_cm": float(np.sqrt(np.mean(np.sum((res.cop_m[cl, 1, :2] - pl[cl, :2]) ** 2, 1))) * 100),
        "cop_R_cm": float(np.sqrt(np.mean(np.sum((res.cop_m[cr, 0, :2] - pr[cr, :2]) ** 2, 1))) * 100),
    }


def _rigid_trial(model, root_pos: np.ndarray, t: np.ndarray) -> CoordinatesTrial:
    """MyoLeg held in one pose (knees slightly bent) with its root translated along root_pos(t), no rotation."""
    q = np.tile(np.asarray(model.qpos0, float), (t.size, 1))
    q[:, 0:3] = root_pos
    return CoordinatesTrial(time_s=t, qpos=q)


# --------------------------------------------------------------------------------------------------
# parameters and bad input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0.0, -75.0, float("nan"), float("inf")])
def test_subject_mass_must_be_positive(bad):
    with pytest.raises(ValueError, match=r"subject_mass_kg.*" + (r"nan|inf" if not math.isfinite(bad) else repr(bad))):
        GroundReactionParams(subject_mass_kg=bad)


@pytest.mark.parametrize("field,value", [("transition", "spline"), ("free_moment", "auto"), ("cutoff_hz", -6.0),
                                         ("horizontal_split", "x"), ("filter_order", 0), ("contact_off", 0.9)])
def test_bad_params_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        GroundReactionParams(subject_mass_kg=75.0, **{field: value})


def test_time_must_be_uniform(model):
    t = np.arange(20) / 100.0
    t[10:] += 0.005
    tr = _rigid_trial(model, np.tile([0.0, 0.0, 1.0], (20, 1)), t)
    with pytest.raises(ValueError, match="uniformly"):
        GroundReactionEstimator(GroundReactionParams(subject_mass_kg=75.0), model).run(tr)


# --------------------------------------------------------------------------------------------------
# exact physics
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff", [6.0, None])
@pytest.mark.parametrize("accel", [(0.0, 0.0, -G), (0.0, 0.0, 0.0), (0.3, -0.2, 1.5)])
def test_total_force_is_m_times_a_minus_g_exactly(model, cutoff, accel):
    """A rigid MyoLeg on a quadratic path (free fall, standing, constant acceleration): the zero-lag smoother passes
    quadratics exactly, so F_ext = m (a - g) to 1e-9 BW, and the feet sum to F_ext to rounding."""
    rate = 120.0
    t = np.arange(150) / rate
    a = np.array(accel)
    p = np.array([0.1, -0.2, 1.0]) + np.outer(t, [1.2, 0.1, 0.0]) + 0.5 * np.outer(t * t, a)
    est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG, cutoff_hz=cutoff, contact_solver=SPLIT), model)
    res = est.run(_rigid_trial(model, p, t))
    bw = SUBJECT_KG * G
    expected = SUBJECT_KG * (a - est.gravity_m_s2)
    assert np.all(res.valid)
    assert np.max(np.abs(res.total_force_n - expected)) < 1e-9 * bw
    assert np.max(np.abs(res.com_acc_m_s2 - a)) < 1e-9 * G
    assert np.max(np.abs(res.force_n.sum(axis=1) - res.total_force_n)) <= 1e-12 * bw
    assert np.max(np.abs(res.residual_force_n)) <= 1e-12 * bw


_BOX_XML = """<mujoco><option timestep="0.002" tolerance="1e-15" iterations="500" ls_iterations="100"/>
<worldbody><geom name="floor" type="plane" size="5 5 0.1"/>
<body name="box" pos="0 0 0.15"><freejoint/><geom type="box" size="0.12 0.05 0.03" mass="2.0"/></body>
</worldbody></mujoco>"""


def test_matches_contact_forces_of_a_mujoco_simulation():
    """A box thrown onto the floor (bounces, slides, tumbles; MuJoCo Euler, tight solver tolerance).  With no
    smoothing the central second difference of the COM is exactly the simulated acceleration, so the estimate
    equals the summed contact forces (mj_contactForce) to 1e-9 of the weight, frame by frame."""
    m = mujoco.MjModel.from_xml_string(_BOX_XML)
    d = mujoco.MjData(m)
    d.qvel[:6] = [0.8, 0.3, 0.0, 0.5, -1.0, 2.0]
    n = 400
    q = np.zeros((n, m.nq))
    fc = np.zeros((n, 3))
    f6 = np.zeros(6)
    for k in range(n):
        q[k] = d.qpos
        mujoco.mj_step(m, d)  # contact forces of state k (the state integrated in this step)
        for i in range(d.ncon):
            mujoco.mj_contactForce(m, d, i, f6)
            fw = d.contact[i].frame.reshape(3, 3).T @ f6[:3]
            fc[k] += fw if m.geom_bodyid[d.contact[i].geom1] == 0 else -fw
    assert np.abs(fc[:, 2]).max() > 100  # it did hit the floor

    def pts(sgn):
        return tuple(FootPoint(f"c{i}", "box", (x, sgn * 0.05, -0.03)) for i, x in enumerate((0.12, -0.12)))

    feet = (FootGeometry("right", pts(-1)), FootGeometry("left", pts(1)))
    p = GroundReactionParams(subject_mass_kg=2.0, cutoff_hz=None, contact_cutoff_hz=None, floor_height_m=0.0,
                             contact_solver=SPLIT)
    est = GroundReactionEstimator(p, model=m, feet=feet, trunk_body=None)
    res = est.run(CoordinatesTrial(time_s=np.arange(n) * m.opt.timestep, qpos=q))
    w = 2.0 * G
    assert est.mass_scale == pytest.approx(1.0)
    err = res.total_force_n[1:-1] - fc[1:-1]  # the ends use the extrapolated neighbour
    assert np.max(np.abs(err)) < 1e-9 * w
    assert np.max(np.abs(res.residual_force_n)) <= 1e-12 * np.abs(res.total_force_n).max()


def test_model_mass_and_scaling(model):
    est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=82.9), model)
    assert est.model_mass_kg == pytest.approx(float(model.body_mass.sum()), rel=1e-12)
    assert est.model_mass_kg == pytest.approx(74.98, abs=0.05)
    assert est.mass_scale == pytest.approx(82.9 / est.model_mass_kg)
    # the upper body (lumbar5 subtree: lumbar vertebrae, torso with the arms lumped in, head) is represented
    assert est.body.n_upper >= 8
    # its mass is the lumbar5 subtree's, summed here body by body from the model's parent table (29.67 kg)
    lumbar5 = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "lumbar5")

    def subtree(b):
        return [b] + [c for i in range(model.nbody) if i != b and model.body_parentid[i] == b for c in subtree(i)]

    upper_kg = float(sum(model.body_mass[i] for i in subtree(lumbar5)))
    assert float(est.body.masses_kg[: est.body.n_upper].sum()) == pytest.approx(upper_kg, rel=1e-9)


# --------------------------------------------------------------------------------------------------
# rules: static split, CoP inside the support polygon, free moment options
# --------------------------------------------------------------------------------------------------


def test_standing_still_splits_statically(model):
    """Standing (both feet down from the first frame, COM at rest): F_ext = m g up exactly, shared so the COM is
    balanced between the two CoPs; shifting the COM toward one foot loads that foot."""
    t = np.arange(60) / 60.0
    est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG, contact_solver=SPLIT), model)
    res = est.run(_rigid_trial(model, np.tile([0.0, 0.0, 1.0], (60, 1)), t))
    assert np.all(res.contact)
    np.testing.assert_allclose(res.total_force_n, np.tile([0, 0, SUBJECT_KG * G], (60, 1)), atol=1e-9)
    assert np.allclose(res.share[:, 0], res.share[0, 0]) and 0.3 < res.share[0, 0] < 0.7
    # the static split balances the moment about the COM in the floor plane (horizontal)
    c = res.com_m[0, :2]
    m_bal = res.share[0, 0] * (res.cop_m[0, 0, :2] - c) + res.share[0, 1] * (res.cop_m[0, 1, :2] - c)
    d = res.cop_m[0, 0, :2] - res.cop_m[0, 1, :2]
    assert abs(np.dot(m_bal, d)) < 1e-12


@needs_data
@pytest.mark.parametrize("causal", [False, True])
def test_cop_stays_inside_each_foot(model, ps, causal):
    tr, _ = ps[1]
    fl = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG), model).run(tr).floor_height_m
    p = GroundReactionParams(subject_mass_kg=SUBJECT_KG, causal=causal, floor_height_m=fl)
    est = GroundReactionEstimator(p, model)
    res = est.run(tr)
    inside = cop_inside_support(res, est, tr.qpos, tol_m=1e-9)
    assert inside.all(), np.argwhere(~inside)[:5]
    np.testing.assert_allclose(res.cop_m[..., 2], fl)


@needs_data
def test_cop_progresses_heel_to_toe(model, ps):
    """Left stance on plate 1: the CoP travels forward along the foot, 60-130 % as far as the plate's CoP (MyoLeg's
    foot, 0.25 m heel to hallux, is shorter than PS's shoe: 68-87 % measured)."""
    for ss in TRIALS:
        tr, plates = ps[ss]
        res = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG), model).run(tr)
        _, fl, _, pl = _plate_feet(plates, res.time_s)
        st = np.flatnonzero(fl[:, 2] > 100)
        k = max(1, len(st) // 10)
        x, xp = res.cop_m[st, 1, 0], pl[st, 0]
        travel, travel_plate = x[-k:].mean() - x[:k].mean(), xp[-k:].mean() - xp[:k].mean()
        assert 0.6 * travel_plate < travel < 1.3 * travel_plate, (ss, travel, travel_plate)


@needs_data
def test_free_moment_options(model, ps):
    tr, _ = ps[1]
    zero = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG, contact_solver=SPLIT), model).run(tr)
    bal = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG, free_moment="balance",
                                                       contact_solver=SPLIT), model).run(tr)
    assert np.all(zero.free_moment_nm == 0.0)
    assert np.max(np.abs(bal.residual_moment_nm[:, 2])) < 1e-9
    # forces and CoPs do not depend on the free-moment option; the free moment closes the vertical balance
    np.testing.assert_array_equal(zero.force_n, bal.force_n)
    np.testing.assert_allclose(bal.free_moment_nm.sum(axis=1), -zero.residual_moment_nm[:, 2], atol=1e-9)
    np.testing.assert_allclose(bal.residual_moment_nm[:, :2], zero.residual_moment_nm[:, :2], atol=1e-12)


# --------------------------------------------------------------------------------------------------
# lab IK mapping, events, validation against the plates
# --------------------------------------------------------------------------------------------------


@needs_data
def test_lab_ik_maps_pelvis_and_feet_touch_the_floor(model, ps):
    d = mujoco.MjData(model)
    pid = model.body("pelvis").id
    for ss in TRIALS:
        tr, plates = ps[ss]
        ik = read_mot(DATA / f"GC5_PS/ik/PS_ngait_og_ss{ss}_kinematics.mot")
        lab = opensim_to_z_up(np.stack([ik.column(c) for c in ("pelvis_tx", "pelvis_ty", "pelvis_tz")], 1))
        for k in (0, tr.n_frames // 2):
            d.qpos[:] = tr.qpos[k]
            mujoco.mj_kinematics(model, d)
            np.testing.assert_allclose(d.xpos[pid], lab[k], atol=1e-9)
            # the pelvis x axis (forward) points along the lab's forward direction (within the pelvis angles)
            assert d.xmat[pid].reshape(3, 3)[:, 0] @ [1, 0, 0] > 0.95
        est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG), model)
        res = est.run(tr)
        # MyoLeg's legs are shorter than PS's: its soles meet a floor ~6.5 cm above the lab floor
        assert 0.05 < res.floor_height_m < 0.08
        fr, fl, _, _ = _plate_feet(plates, res.time_s)
        P, buf = est.body.n_points, est.body.new_buffers()
        pts = np.empty((tr.n_frames, 2 * P, 3))
        for k in range(tr.n_frames):
            est.body.pose(tr.qpos[k], None, buf)
            pts[k] = buf.pts
        low_l = pts[:, P:, 2].min(axis=1) - res.floor_height_m
        low_r = pts[:, :P, 2].min(axis=1) - res.floor_height_m
        assert np.all(np.abs(low_l[fl[:, 2] > 300]) < 0.015)  # loaded left foot: on the floor
        assert np.all(np.abs(low_r[fr[:, 2] > 300]) < 0.015)
        assert low_l[(fl[:, 2] < 1) & (fr[:, 2] > 300)].max() > 0.04  # left swing: clearly off the floor


@needs_data
def test_contact_events_match_the_plates(model, ps):
    """Right toe off (plate 2), right heel strike (plate 3), left toe off (plate 1) within 3 frames (25 ms)."""
    for ss in TRIALS:
        tr, plates = ps[ss]
        res = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG), model).run(tr)
        fr, fl, _, _ = _plate_feet(plates, res.time_s)
        for f, plate_on in ((0, fr[:, 2] > 20), (1, fl[:, 2] > 20)):
            est_ev = np.flatnonzero(np.diff(res.contact[:, f].astype(int)))
            plate_ev = np.flatnonzero(np.diff(plate_on.astype(int)))
            assert len(est_ev) == len(plate_ev), (ss, FEET[f], est_ev, plate_ev)
            assert np.max(np.abs(est_ev - plate_ev)) <= 3, (ss, FEET[f], est_ev, plate_ev)


@needs_data
def test_validation_against_force_plates(model, ps, capsys, pytestconfig):
    """GC5 PS ss1/3/8: RMSE (%BW, BW = 75 kg g) on each foot's measured stance, CoP RMS distance.

    Regression guard: each bound is this implementation's worst trial + 15 % (measured 2026-12-07, pytest -s
    prints the table; the figures are in the comments beside the bounds).  PS's plates
    integrate to 82.9 kg over a full gait cycle (mean vertical GRF / g), not the 75 kg on record, so the table has
    both masses.
    """
    rows = []
    implied = []
    for ss in TRIALS:
        tr, plates = ps[ss]
        _, pl = plates
        implied.append(float(np.mean(sum(pl[i][0][:, 2] for i in (1, 2, 3)))) / G)
        for mass in (SUBJECT_KG, 82.9):
            for causal in (False, True):
                zl = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=mass), model).run(tr)
                res = zl if not causal else GroundReactionEstimator(
                    GroundReactionParams(subject_mass_kg=mass, causal=True, floor_height_m=zl.floor_height_m),
                    model).run(tr)
                rows.append((ss, mass, causal, _metrics(res, plates)))
    keys = ["L_vz", "L_ap", "L_ml", "R_vz", "R_ap", "T_vz", "T_ap", "T_ml", "L_vz_mae", "cop_L_cm", "cop_R_cm"]
    if pytestconfig.getoption("capture") == "no":  # pytest -s: print the table
        with capsys.disabled():
            print("\nGRF vs plates, GC5 PS (RMSE %BW on stance, BW = 75 kg g; CoP RMS cm)")
            print(f"{'ss':>3} {'mass':>5} {'mode':>8}" + "".join(f"{k:>9}" for k in keys))
            for ss, mass, causal, mt in rows:
                mode = "causal" if causal else "zero-lag"
                print(f"{ss:3d} {mass:5.1f} {mode:>8}" + "".join(f"{mt[k]:9.2f}" for k in keys))
            print(f"plate-implied mass (mean vertical GRF / g): {np.round(implied, 2).tolist()} kg")

    assert all(81.5 < m < 84.0 for m in implied)  # the data's surprise, pinned

    def worst(mass, causal, key):
        return max(mt[key] for ss, ms, cs, mt in rows if ms == mass and cs == causal)

    # worst over ss1/3/8 measured 2026-12-07, bound = that x 1.15 (any slip past 15 % fails).  The figures are the
    # rule split's; the feasible fit (the default since the same day) measured: 75 kg L_vz 12.46-14.03, R_vz
    # 10.42-12.10, L_ap 3.71-4.19, T_ml 3.27-4.13, CoP L 3.00-5.13 cm, CoP R 3.62-5.31 cm; 82.9 kg L_vz 8.02-10.03,
    # R_vz 5.32-7.18, T_vz 6.30-7.17; causal 75 kg L_vz 15.88-21.42, 82.9 kg T_vz 10.57-11.45: inside every bound.
    # zero-lag, recorded mass 75 kg (achieved: L_vz 12.26-14.36, R_vz 9.16-11.36, L_ap 3.99-4.62, R_ap 3.36-3.65,
    # T_ml 3.27-4.13, CoP L 2.82-5.00 cm, CoP R 3.86-5.47 cm)
    assert worst(75.0, False, "L_vz") <= 14.36 * 1.15
    assert worst(75.0, False, "R_vz") <= 11.36 * 1.15
    assert worst(75.0, False, "L_ap") <= 4.62 * 1.15
    assert worst(75.0, False, "R_ap") <= 3.65 * 1.15
    assert worst(75.0, False, "T_ml") <= 4.13 * 1.15
    assert worst(75.0, False, "cop_L_cm") <= 5.00 * 1.15
    assert worst(75.0, False, "cop_R_cm") <= 5.47 * 1.15
    # zero-lag, plate-implied mass (achieved: L_vz 6.98-10.11, R_vz 5.25-8.24, total vertical 6.30-7.17)
    assert worst(82.9, False, "L_vz") <= 10.11 * 1.15
    assert worst(82.9, False, "R_vz") <= 8.24 * 1.15
    assert worst(82.9, False, "T_vz") <= 7.17 * 1.15
    # causal (lags 45.5 ms, compared unshifted; achieved: L_vz 15.37-20.26 at 75 kg, T_vz 10.57-11.45 at 82.9 kg)
    assert worst(75.0, True, "L_vz") <= 20.26 * 1.15
    assert worst(82.9, True, "T_vz") <= 11.45 * 1.15


# --------------------------------------------------------------------------------------------------
# real time
# --------------------------------------------------------------------------------------------------


def _replay(est, tr):
    est.reset()
    out = est.new_frame()
    fr = CoordinatesFrame(qpos=np.zeros(est.model.nq), lumbar_rad=np.zeros(3))
    keys = ("force_n", "cop_m", "free_moment_nm", "share", "contact", "contact_likelihood", "total_force_n", "com_m",
            "com_acc_m_s2", "ang_mom_rate_nm", "residual_force_n", "residual_moment_nm")
    rec = {k: [] for k in keys}
    for k in range(tr.n_frames):
        fr.qpos[:] = tr.qpos[k]
        fr.lumbar_rad[:] = tr.lumbar_rad[k]
        fr.t_s = float(tr.time_s[k])
        est.step(fr, out)
        assert out.valid and out.index == k
        for key in keys:
            rec[key].append(np.array(getattr(out, key)))
    return {k: np.array(v) for k, v in rec.items()}


@needs_data
def test_step_replay_equals_batch_causal(model, ps):
    """'Same' = the batch path with the causal filters and the real-time phase logic (``causal=True``) gives what
    ``step`` gives frame by frame, to 1e-9 BW (the two differ only in the order of floating-point operations)."""
    for ss in (1, 8):
        tr, _ = ps[ss]
        fl = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG), model).run(tr).floor_height_m
        p = GroundReactionParams(subject_mass_kg=SUBJECT_KG, causal=True, sample_rate_hz=120.0, floor_height_m=fl)
        batch = GroundReactionEstimator(p, model).run(tr)
        rt = _replay(GroundReactionEstimator(p, model), tr)
        bw = SUBJECT_KG * G
        for key in ("force_n", "total_force_n", "residual_force_n"):
            np.testing.assert_allclose(rt[key], getattr(batch, key), rtol=0, atol=1e-9 * bw, err_msg=key)
        for key in ("free_moment_nm", "ang_mom_rate_nm", "residual_moment_nm"):
            np.testing.assert_allclose(rt[key], getattr(batch, key), rtol=0, atol=1e-8 * bw, err_msg=key)
        np.testing.assert_allclose(rt["cop_m"], batch.cop_m, rtol=0, atol=1e-9)
        np.testing.assert_allclose(rt["com_acc_m_s2"], batch.com_acc_m_s2, rtol=0, atol=1e-9 * G)
        np.testing.assert_allclose(rt["share"], batch.share, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(rt["contact"], batch.contact)
        assert batch.lag_s == pytest.approx(GroundReactionEstimator(p, model).causal_lag_s())


def test_causal_lag_is_stated_and_true(model):
    """The stated lag: DC group delay of the 2nd-order 6 Hz Butterworth (sqrt(2)/(2 pi 6) = 37.5 ms analogue) plus
    one sample for the backward second difference.  Checked on a slow vertical bob of the whole body: the causal
    acceleration matches the true one delayed by the stated lag far better than undelayed."""
    rate = 120.0
    est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG, causal=True, floor_height_m=0.0,
                                                       sample_rate_hz=rate), model)
    lag = est.causal_lag_s()
    assert lag == pytest.approx(math.sqrt(2) / (2 * math.pi * 6.0) + 1 / rate, rel=0.03)
    t = np.arange(int(4 * rate)) / rate
    w = 2 * math.pi * 0.8
    amp = 0.03
    p = np.column_stack([np.zeros_like(t), np.zeros_like(t), 1.0 + amp * np.sin(w * t)])
    res = est.run(_rigid_trial(model, p, t))
    a_est = res.com_acc_m_s2[:, 2]
    late = t > 1.5  # past the start-up
    a_true_now = -amp * w * w * np.sin(w * t)
    a_true_lag = -amp * w * w * np.sin(w * (t - lag))
    e_lag = np.sqrt(np.mean((a_est - a_true_lag)[late] ** 2))
    e_now = np.sqrt(np.mean((a_est - a_true_now)[late] ** 2))
    assert e_lag < 0.05 * amp * w * w
    assert e_lag < 0.25 * e_now


@needs_data
def test_step_allocates_no_arrays(model, ps):
    """step writes into preallocated buffers: no heap growth over 1000 frames and a small transient peak (NumPy's
    own reduction scratch and Python scalars, < 8 KB; one (24, 9) float array alone would be 1.7 KB)."""
    tr, _ = ps[1]
    p = GroundReactionParams(subject_mass_kg=SUBJECT_KG, causal=True, sample_rate_hz=120.0, floor_height_m=0.065)
    est = GroundReactionEstimator(p, model)
    est.reset()
    out = est.new_frame()
    fr = CoordinatesFrame(qpos=np.zeros(model.nq), lumbar_rad=np.zeros(3))

    def go(k):
        j = k % tr.n_frames
        fr.qpos[:] = tr.qpos[j]
        fr.lumbar_rad[:] = tr.lumbar_rad[j]
        est.step(fr, out)

    for k in range(200):
        go(k)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    try:
        peaks = []
        for k in range(200, 300):
            tracemalloc.reset_peak()
            b0 = tracemalloc.get_traced_memory()[0]
            go(k)
            peaks.append(tracemalloc.get_traced_memory()[1] - b0)
        mid = tracemalloc.get_traced_memory()[0]
        for k in range(300, 1300):
            go(k)
        end = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        if was:
            gc.enable()
    assert max(peaks) < 8192
    assert end - mid < 2048


@needs_data
def test_step_flags_nan_frames_and_holds(model, ps):
    tr, _ = ps[1]
    p = GroundReactionParams(subject_mass_kg=SUBJECT_KG, sample_rate_hz=120.0, floor_height_m=0.065)
    est = GroundReactionEstimator(p, model)
    out = est.new_frame()
    fr = CoordinatesFrame(qpos=tr.qpos[0].copy(), lumbar_rad=tr.lumbar_rad[0].copy())
    for k in range(10):
        fr.qpos[:] = tr.qpos[k]
        est.step(fr, out)
    held = out.force_n.copy()
    fr.qpos[5] = np.nan
    est.step(fr, out)
    assert not out.valid and out.index == 10
    np.testing.assert_array_equal(out.force_n, held)
    fr.qpos[:] = tr.qpos[11]
    est.step(fr, out)
    assert out.valid and np.all(np.isfinite(out.force_n))


def test_step_needs_rate_and_floor(model):
    est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG), model)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        est.reset()
    est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG, sample_rate_hz=60.0), model)
    with pytest.raises(ValueError, match="floor_height_m"):
        est.reset()
    est.reset(floor_height_m=0.0)


# --------------------------------------------------------------------------------------------------
# NaN kinematics in the batch path
# --------------------------------------------------------------------------------------------------


@needs_data
def test_nan_gaps_filled_or_excluded(model, ps):
    tr, _ = ps[1]
    est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG, contact_solver=SPLIT), model)
    clean = est.run(tr)
    q = tr.qpos.copy()
    q[30:35] = np.nan  # 5 frames = 42 ms: filled by the cubic spline
    q[70:90] = np.nan  # 20 frames = 167 ms: excluded
    q[:2] = np.nan  # at the start: nothing to interpolate from, excluded
    res = est.run(replace(tr, qpos=q))
    assert res.filled[30:35].all() and res.valid[30:35].all() and res.filled.sum() == 5
    assert not res.valid[70:90].any() and not res.valid[:2].any()
    assert np.isnan(res.force_n[70:90]).all()
    ok = res.valid
    assert np.isfinite(res.force_n[ok]).all() and ok.sum() == tr.n_frames - 22
    bw = SUBJECT_KG * G
    assert np.sqrt(np.mean((res.total_force_n[25:40] - clean.total_force_n[25:40]) ** 2)) < 0.05 * bw
    assert np.max(np.abs(res.residual_force_n[ok])) <= 1e-12 * bw
    assert any("NaN frames" in n for n in res.notes)


def test_accepts_any_trial_with_time_and_qpos(model):
    class IKLike:  # e.g. models.kinematics.inverse_kinematics.IKTrial: no lumbar angles
        def __init__(self, t, q):
            self.time_s, self.qpos = t, q

    t = np.arange(30) / 60.0
    tr = _rigid_trial(model, np.tile([0.0, 0.0, 1.0], (30, 1)), t)
    res = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT_KG), model).run(IKLike(t, tr.qpos))
    assert res.valid.all() and res.n_frames == 30


# --------------------------------------------------------------------------------------------------
# ground frame (R_adapt)
# --------------------------------------------------------------------------------------------------


def _marker_landmarks(ss):
    tr = read_trc(DATA / f"GC5_PS/trc/PS_ngait_og_ss{ss}.trc")
    p = opensim_to_z_up(tr.positions_m)
    ix = {n: i for i, n in enumerate(tr.marker_names)}
    right = ["RHeel", "RToe", "RMidfootLateral", "RHindfoot"]
    left = ["LHeel", "LToe", "LMidfootLateral", "LHindfoot"]
    feet = np.stack([p[:, [ix[n] for n in right]], p[:, [ix[n] for n in left]]], axis=1)
    pelvis = p[:, [ix[n] for n in ("RAsis", "LAsis", "RPsis", "LPsis")]].mean(axis=1)
    return feet, pelvis, tr.rate_hz


def _angle_deg(r):
    return math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(r) - 1) / 2))))


@needs_data
def test_ground_frame_recovers_random_rotations(ps):
    """Lab markers rotated by random rotations: the estimated floor/heading frame undoes each rotation within 1
    degree; on the unrotated (z-up) lab data the floor normal is within 2.5 degrees of the lab vertical (1.2-1.7
    measured: the left and right shoe markers sit at slightly different heights, which tilts the roll)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(7)
    for ss in TRIALS:
        feet, pelvis, rate = _marker_landmarks(ss)
        ref = estimate_ground_frame(feet, pelvis, rate)
        up_err = math.degrees(math.acos(float(ref.up_in @ [0.0, 0.0, 1.0])))
        assert up_err < 2.5
        assert ref.forward_in @ [1.0, 0.0, 0.0] > math.cos(math.radians(5.0))
        for _ in range(3):
            r = Rotation.random(random_state=rng).as_matrix()
            g = estimate_ground_frame(feet @ r.T, pelvis @ r.T, rate)
            assert _angle_deg(g.rotation @ r @ ref.rotation.T) < 1.0
            np.testing.assert_allclose(g.rotation @ r, ref.rotation, atol=1e-6)
            assert g.floor_height_m == pytest.approx(ref.floor_height_m, abs=1e-9)


def test_ground_frame_rejects_standing():
    feet = np.zeros((50, 2, 2, 3))
    feet[:, 1, :, 1] = 0.2
    feet[:, :, 1, 0] = 0.2
    pelvis = np.tile([0.1, 0.1, 1.0], (50, 1))
    with pytest.raises(ValueError, match="standing"):
        estimate_ground_frame(feet, pelvis, 100.0)
