"""Kinematics-only GRF inputs: contact edges refined from the likelihood (models/grf/contact.py), the trunk's lumbar
angles from torso markers (models/grf/trunk.py) and the plates-vs-kinematics consistency check
(models/grf/plate_check.py), on synthetic data with known answers and on the shared trials."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest

from models.grf.body import rot_zxy
from models.grf.contact import hysteresis, refine_contact_edges
from models.grf.model import load_myoleg
from models.grf.params import GroundReactionParams
from models.grf.plate_check import corrected_plate_force, plate_consistency
from models.grf.trunk import (
    lumbar_angles_from_markers,
    lumbar_for_grf,
    thorax_markers,
    zxy_angles,
)
from models.io.lab_files import shared_data_dir

DATA = shared_data_dir()


# ---------------------------------------------------------------------------------------------- contact edges

def _ramp_likelihood() -> np.ndarray:
    """One foot: likelihood rising 0 -> 1 over frames 10-19, flat, falling 1 -> 0 over frames 40-49."""
    lik = np.zeros((60, 1))
    lik[10:20, 0] = np.linspace(0.05, 0.95, 10)
    lik[20:40, 0] = 1.0
    lik[40:50, 0] = np.linspace(0.95, 0.05, 10)
    return lik


def test_contact_edges_move_to_the_given_levels():
    lik = _ramp_likelihood()
    c = hysteresis(lik, 0.6, 0.4)
    a0, b0 = np.flatnonzero(c[:, 0])[[0, -1]]
    assert lik[a0, 0] > 0.6 and lik[a0 - 1, 0] <= 0.6 and lik[b0 + 1, 0] < 0.4
    r = refine_contact_edges(c, lik, 0.3, 0.5)
    a1, b1 = np.flatnonzero(r[:, 0])[[0, -1]]
    assert lik[a1, 0] > 0.3 >= lik[a1 - 1, 0]          # starts where the likelihood last rose above 0.3
    assert lik[b1, 0] >= 0.5 > lik[b1 + 1, 0]          # ends at its last frame above 0.5
    assert a1 < a0 and b1 < b0
    np.testing.assert_array_equal(refine_contact_edges(c, lik, None, None), c)


def test_contact_edges_keep_the_trial_ends_and_at_least_one_frame():
    lik = np.full((20, 2), 0.45)
    lik[:5, 0] = 1.0                                    # foot 0: contact from the first frame
    c = np.zeros((20, 2), bool)
    c[:8, 0] = True
    c[12, 1] = True                                     # foot 1: a one-frame contact below the offset level
    r = refine_contact_edges(c, lik, 0.3, 0.5)
    assert r[0, 0] and r[:5, 0].all() and not r[5:, 0].any()
    assert r[12, 1] and r[:, 1].sum() >= 1               # backdated over the 0.45 run, but never emptied
    assert r[12:, 1].sum() == 1


def test_contact_level_parameters_are_checked():
    with pytest.raises(ValueError, match="contact_onset_level"):
        GroundReactionParams(subject_mass_kg=70, contact_onset_level=0.9)
    with pytest.raises(ValueError, match="contact_offset_level"):
        GroundReactionParams(subject_mass_kg=70, contact_offset_level=0.2)
    GroundReactionParams(subject_mass_kg=70, contact_onset_level=None, contact_offset_level=None)


# ---------------------------------------------------------------------------------------------- trunk

def test_zxy_angles_invert_rot_zxy():
    rng = np.random.default_rng(3)
    R = np.empty((3, 3))
    for _ in range(50):
        a = rng.uniform(-1.2, 1.2, 3)
        rot_zxy(*a, R)
        np.testing.assert_allclose(zxy_angles(R), a, atol=1e-12)


def _torso_markers(model, d, ids, off: np.ndarray, q: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(n, m, 3) markers: the torso points ``off`` (torso frame, m) at each pose ``q``, rotated about L5/S1 by the
    lumbar angles ``true`` (rad, z-x-y in the pelvis frame)."""
    mk = np.empty((len(q), off.shape[0], 3))
    Rl = np.empty((3, 3))
    for k in range(len(q)):
        d.qpos[:] = q[k]
        mujoco.mj_kinematics(model, d)
        Rp = d.xmat[ids["pelvis"]].reshape(3, 3)
        j = d.xpos[ids["lumbar5"]]
        neutral = d.xpos[ids["torso"]] + off @ d.xmat[ids["torso"]].reshape(3, 3).T
        rot_zxy(*true[k], Rl)
        mk[k] = j + (neutral - j) @ (Rp @ Rl @ Rp.T).T
    return mk


def _torso_scene(seed: int, n: int):
    """MyoLeg, its data, the pelvis/lumbar5/torso body ids, ``rng`` (seeded), 5 torso-marker offsets (torso frame, m)
    and ``n`` poses at qpos0 with the pelvis translated at random around 0.95 m height."""
    model = load_myoleg()
    d = mujoco.MjData(model)
    ids = {b: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in ("pelvis", "lumbar5", "torso")}
    rng = np.random.default_rng(seed)
    off = np.array([[0.08, 0.35, 0.0], [-0.1, 0.4, 0.0], [0.0, 0.45, 0.15], [0.0, 0.45, -0.15], [0.06, 0.15, 0.0]])
    q = np.tile(model.qpos0, (n, 1))
    q[:, :3] = rng.uniform(-0.3, 0.3, (n, 3)) + [0, 0, 0.95]
    return model, d, ids, rng, off, q


def test_lumbar_angles_recovered_from_synthetic_torso_markers():
    """Markers placed on the model's torso, rotated about L5/S1 by known lumbar angles in the pelvis frame, give
    those angles back (with 2 mm noise: within 1 deg), whatever the pelvis pose."""
    model, d, ids, rng, off, q = _torso_scene(seed=7, n=12)
    n = q.shape[0]
    true = rng.uniform(-0.3, 0.3, (n, 3))
    mk = _torso_markers(model, d, ids, off, q, true)
    np.testing.assert_allclose(lumbar_angles_from_markers(model, q, mk, off), true, atol=1e-9)
    noisy = mk + rng.normal(0.0, 0.002, mk.shape)
    assert np.abs(lumbar_angles_from_markers(model, q, noisy, off) - true).max() < np.radians(1.0)
    mk[3, :3] = np.nan                                   # a frame with too few markers: filled from its neighbours
    got = lumbar_for_grf(model, q, mk, off)
    assert np.isfinite(got).all() and np.ptp(got[:, 0]) == 0.0
    with pytest.raises(ValueError, match="at least 3"):
        lumbar_angles_from_markers(model, q, mk[:, :2], off[:2])


def test_thorax_markers_leave_out_shoulders_and_other_bodies():
    names = ["Sternum", "R.Shoulder", "LShoulder", "Neck", "RASI"]
    bodies = ["torso", "torso", "torso", "torso", "pelvis"]
    assert thorax_markers(names, bodies) == [0, 3]


@pytest.mark.skipif(not (DATA / "GC5_PS" / "ik").is_dir(), reason="shared GC5 data not found")
def test_trunk_angles_follow_the_lab_ik_on_ps():
    """Our thorax-marker lumbar bending and rotation against the lab's OpenSim IK (Rajagopal back joint): the same
    motion (correlation > 0.95) and mean within 3 deg."""
    from models.io.storage import read_mot
    from models.trial_analysis import AnalyzeParams, trial_kinematics, trunk_lumbar

    trc, ms = DATA / "GC5_PS/trc/PS_ngait_og_ss1.trc", DATA / "GC5_PS/model/GC5.osim"
    kin = trial_kinematics(trc, ms, AnalyzeParams(75.0, 1.8, "left"))
    notes: list[str] = []
    lum = trunk_lumbar(kin, trc, ms, notes)
    assert lum is not None and "thorax markers" in notes[-1]
    ref = read_mot(DATA / "GC5_PS/ik/PS_ngait_og_ss1_kinematics.mot")
    ref = ref.to_radians() if ref.in_degrees else ref
    for a, col in ((1, "lumbar_bending"), (2, "lumbar_rotation")):
        r = np.interp(kin.time_s, ref.time_s, ref.column(col))
        assert np.corrcoef(lum[:, a], r)[0, 1] > 0.95, col
        assert abs(np.degrees(np.mean(lum[:, a] - r))) < 3.0, col


# ---------------------------------------------------------------------------------------------- plate check

def test_plate_consistency_recovers_a_known_scale_and_lag():
    rate = 120.0
    t = np.arange(240) / rate
    kin = 700.0 + 150.0 * np.sin(2 * np.pi * 1.8 * t) + 60.0 * np.sin(2 * np.pi * 5.1 * t)
    lag = 2
    plate = np.empty_like(kin)
    plate[lag:] = 1.1 * kin[:-lag]                       # plates 10 % high and two frames late
    plate[:lag] = 1.1 * kin[0]
    contact = np.ones((t.size, 2), bool)
    chk = plate_consistency(kin, plate, contact, contact, rate)
    assert chk is not None
    assert chk.scale == pytest.approx(1.1, rel=1e-9)
    assert chk.lag_s == pytest.approx(lag / rate)
    assert chk.rms_n < 1e-6 < chk.rms_zero_lag_n
    back = corrected_plate_force(plate, chk, rate)
    ok = np.isfinite(back)
    np.testing.assert_allclose(back[ok][5:-5], kin[ok][5:-5], rtol=1e-9)
    # a foot in contact but off the plates: no frame qualifies
    assert plate_consistency(kin, plate, contact, np.zeros_like(contact), rate) is None


@pytest.mark.skipif(not (DATA / "GC6_DM").is_dir() or not (DATA / "GC5_PS").is_dir(), reason="shared data not found")
def test_shared_plates_against_the_kinematics():
    """The reference check of the validation table: DM's plates agree with m (a_com - g) at the recorded 70 kg
    (scale within 2 %, no lag); PS's carry 10 % more than the recorded 75 kg and lag the markers by 2 frames
    (measured 2026-12-07: 1.102-1.105, +16.7 ms)."""
    from models.io.shared_trials import shared_trials
    from models.trial_analysis import (
        AnalyzeParams,
        analyze_trial,
        grf_validation,
        trial_kinematics,
    )

    for t in shared_trials(Path(DATA)):
        if t.name not in ("PS_ss1", "DM_og3"):
            continue
        params = AnalyzeParams(t.mass_kg, t.height_m, t.side)  # type: ignore[arg-type]
        kin = trial_kinematics(t.trc, t.markerset, params)
        measured = analyze_trial(t.trc, t.markerset, params, grf_path=t.grf, kin=kin)
        g = grf_validation(analyze_trial(t.trc, t.markerset, params, kin=kin), measured)
        if t.name == "DM_og3":
            assert abs(g["plates_vs_kinematics_scale"] - 1.0) < 0.02 and g["plates_vs_kinematics_lag_ms"] == 0.0
        else:
            assert 1.08 < g["plates_vs_kinematics_scale"] < 1.13
            assert g["plates_vs_kinematics_lag_ms"] == pytest.approx(1e3 * 2 / 120)


def test_trunk_tracker_matches_the_batch_angles_frame_by_frame():
    """The causal tracker gives the batch bending and rotation on every frame; its extension is a moving average
    (equal to the batch's for a constant extension)."""
    from models.grf.trunk import TrunkTracker

    model = load_myoleg()
    d = mujoco.MjData(model)
    ids = {b: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in ("pelvis", "lumbar5", "torso")}
    off = np.array([[0.08, 0.35, 0.0], [-0.1, 0.4, 0.0], [0.0, 0.45, 0.15], [0.06, 0.15, 0.0]])
    n = 30
    q = np.tile(model.qpos0, (n, 1))
    t = np.arange(n) / 60.0
    q[:, 2] = 0.95
    true = np.column_stack([np.full(n, -0.2), 0.1 * np.sin(6 * t), 0.15 * np.cos(5 * t)])
    mk = _torso_markers(model, d, ids, off, q, true)
    tr = TrunkTracker(model, off, 60.0)
    live = np.array([tr.step(q[k], mk[k]).copy() for k in range(n)])
    np.testing.assert_allclose(live, lumbar_for_grf(model, q, mk, off), atol=1e-9)
    hold = tr.step(q[0], np.full_like(mk[0], np.nan))
    np.testing.assert_allclose(hold, live[-1])
    with pytest.raises(ValueError, match="offsets_m"):
        TrunkTracker(model, off[:2], 60.0)


def test_contact_edges_move_at_most_the_cap():
    lik = _ramp_likelihood()
    lik[:13, 0] = 0.35                                  # a likelihood hovering above the onset level before contact
    c = hysteresis(lik, 0.6, 0.4)
    a0 = np.flatnonzero(c[:, 0])[0]
    assert np.flatnonzero(refine_contact_edges(c, lik, 0.3, None)[:, 0])[0] == 0
    assert np.flatnonzero(refine_contact_edges(c, lik, 0.3, None, max_frames=3)[:, 0])[0] == a0 - 3


def _lumbar_angles_per_frame(model, q, mk, off) -> np.ndarray:
    """The per-frame loop lumbar_angles_from_markers had before issue 22 (mj_kinematics and one SVD a frame, gaps
    left NaN): the reference of the vectorised form."""
    from models.grf.trunk import _kabsch

    ids = {b: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in ("pelvis", "lumbar5", "torso")}
    d = mujoco.MjData(model)
    ang = np.full((q.shape[0], 3), np.nan)
    for k in range(q.shape[0]):
        ok = np.all(np.isfinite(mk[k]), axis=1)
        if ok.sum() < 3 or not np.all(np.isfinite(q[k])):
            continue
        d.qpos[:] = q[k]
        mujoco.mj_kinematics(model, d)
        Rp = d.xmat[ids["pelvis"]].reshape(3, 3)
        j = d.xpos[ids["lumbar5"]]
        neutral = d.xpos[ids["torso"]] + off[ok] @ d.xmat[ids["torso"]].reshape(3, 3).T
        ang[k] = zxy_angles(_kabsch((neutral - j) @ Rp, (mk[k, ok] - j) @ Rp))
    return ang


def test_lumbar_angles_vectorised_equal_the_per_frame_loop():
    """Noisy markers, some missing (frames with 3, 4 or 5 of them, one with 2 and one NaN pose, filled from the
    neighbours): every solvable frame equals the per-frame Kabsch to 1e-12 rad."""
    model, d, ids, rng, off, q = _torso_scene(seed=12, n=40)
    n = q.shape[0]
    mk = _torso_markers(model, d, ids, off, q, rng.uniform(-0.3, 0.3, (n, 3))) + rng.normal(0, 0.003, (n, 5, 3))
    drop = rng.random((n, 5)) < 0.2
    drop[5, :3] = True                                           # 2 markers left: not solvable
    mk[drop] = np.nan
    q[9, 4] = np.nan                                             # a NaN pose
    ref = _lumbar_angles_per_frame(model, q, mk, off)
    got = lumbar_angles_from_markers(model, q, mk, off)
    solved = np.isfinite(ref).all(axis=1)
    assert not solved[5] and not solved[9] and solved.sum() > 30
    np.testing.assert_allclose(got[solved], ref[solved], rtol=0, atol=1e-12)
    assert np.isfinite(got).all()
