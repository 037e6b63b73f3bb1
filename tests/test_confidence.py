"""The per-frame confidence (models.confidence): each part 1 inside its envelope, smoothly 0 beyond it; the
combination rule; the chain carries it on a lab trial, it drops on noise and on a frozen input; the MCAP topic and
offline.csv carry every part.

References: the envelopes' own bounds (the code states each with its literature source); the PS ss1 lab trial
(Grand Challenge, Fregly 2012) through the real-time chain.
"""
import math

import numpy as np
import pytest

from models import confidence as C


def _sweep(f, lo, hi, n=2001):
    x = np.linspace(lo, hi, n)
    return x, np.array([f(v) for v in x])


@pytest.mark.parametrize("env", list(C.ENVELOPES.values()), ids=list(C.ENVELOPES))
def test_each_envelope_part_is_one_inside_zero_beyond_and_smooth(env):
    inside = np.linspace(env.lower, env.upper, 11)
    assert all(env.part(v) == 1.0 for v in inside)
    assert env.part(env.upper + env.margin) == 0.0 and env.part(env.upper + 3 * env.margin) == 0.0
    assert env.part(env.lower - env.margin) == 0.0
    assert env.part(math.nan) == 0.0
    x, y = _sweep(env.part, env.upper, env.upper + env.margin)
    assert np.all(np.diff(y) <= 1e-15)                      # monotone falling beyond the upper bound
    assert np.max(np.abs(np.diff(y))) < 3.0 / (x.size - 1)  # continuous: smoothstep's slope is at most 1.5 / margin
    assert 0.0 < env.part(env.upper + 0.5 * env.margin) < 1.0
    x, y = _sweep(env.part, env.lower - env.margin, env.lower)
    assert np.all(np.diff(y) >= -1e-15)
    # array form equals the scalar form
    xs = np.linspace(env.lower - 2 * env.margin, env.upper + 2 * env.margin, 97)
    np.testing.assert_allclose(C.soft_inside_array(xs, env.lower, env.upper, env.margin), [env.part(v) for v in xs],
                               atol=1e-12)


def test_envelope_bounds_are_the_stated_physiology():
    # vGRF <= 1.6 BW per foot in walking, KCF total <= 4 BW, the Grand Challenge in-vivo peaks (2.19-2.47 BW) inside
    assert C.VGRF_ENVELOPE.upper == 1.6 and C.KCF_ENVELOPE.upper == 4.0
    from _support import shared_data

    bw = 75.0 * C.STANDARD_GRAVITY_M_S2
    for trial in ("ss1", "ss3", "ss8"):
        d = np.loadtxt(shared_data("GC5_PS", "in_vivo", f"PS_ngait_og_{trial}_eTibia_101pt.csv"), delimiter=",",
                       skiprows=1)
        peak = d[:, 3].max() / bw
        assert 2.0 < peak < 2.6
        assert C.KCF_ENVELOPE.part(peak) == 1.0
        assert C.kcf_part(d[:, 1].min() / bw, d[:, 2].min() / bw, peak) == 1.0
    for env in C.ENVELOPES.values():
        assert env.source


def test_scalar_parts_fall_monotonically_from_one_to_zero():
    assert C.vgrf_part(1.2) == 1.0 and C.vgrf_part(0.0) == 1.0 and C.vgrf_part(-0.1) == 0.0 and C.vgrf_part(2.0) == 0.0
    assert 0.0 < C.vgrf_part(-0.05) < 1.0
    assert C.visibility_part(1.0) == 1.0 and C.visibility_part(C.VISIBILITY_ZERO) == 0.0
    x, y = _sweep(C.visibility_part, 0.0, 1.0)
    assert np.all(np.diff(y) >= 0.0)
    assert C.freshness_part(0.0) == 1.0 and C.freshness_part(C.FRESHNESS_HOLD_S) == 1.0
    assert C.freshness_part(C.FRESHNESS_HOLD_S + C.FRESHNESS_MARGIN_S) == 0.0
    assert C.reprojection_part(math.nan) == 1.0               # no monocular fit (lab markers): not judged
    assert C.reprojection_part(3.0) == 1.0 and C.reprojection_part(25.0) == 0.0
    assert C.dynamics_part(0.05, 3.0) == 1.0 and C.dynamics_part(math.nan, 1.0) == 0.0
    assert C.dynamics_part(0.05, 20.0) == 0.0 and C.dynamics_part(0.6, 1.0) == 0.0


def test_activation_rate_bound_follows_first_order_activation_dynamics():
    dt = 1.0 / 60.0
    rise, fall = C.activation_step_bounds(dt)
    assert rise == pytest.approx(1.0 - math.exp(-dt / 0.010)) and fall == pytest.approx(1.0 - math.exp(-dt / 0.040))
    a0 = np.array([0.5, 0.5, 0.2])
    # exactly the fastest feasible rise / fall: excess 0; a fall from 0.5 to 0.0 in one frame: infeasible
    a1 = np.array([0.5 + rise * 0.5, 0.5 - fall * 0.5, 0.2])
    ex = C.activation_excess(a0, a1, dt)
    np.testing.assert_allclose(ex[:2], [0.0, 0.0], atol=1e-12)
    assert ex[2] == pytest.approx(-fall * 0.2)                   # unchanged: inside by the allowed fall
    ex = C.activation_excess(np.array([0.5]), np.array([0.0]), dt)[0]
    assert ex == pytest.approx(0.5 - fall * 0.5)
    assert C.ACTIVATION_RATE_ENVELOPE.part(ex) < 0.5


def _frame_confidence(n_markers=4, n_muscles=3):
    return C.FrameConfidence(C.ConfidenceParams(70.0, 1.75), n_markers, n_muscles)


def _good_inputs(fc, k=0):
    bw = 70.0 * C.STANDARD_GRAVITY_M_S2
    markers = np.arange(12, dtype=float).reshape(4, 3) + 0.01 * k
    grf = np.array([[0.0, 0.0, 0.8 * bw], [0.0, 0.0, 0.2 * bw]])
    return dict(markers_m=markers, visibility=None, reprojection_px=math.nan, grf_n=grf,
                residual_force_n=np.array([0.01 * bw, 0.0, 0.0]), residual_moment_nm=np.zeros(3), kam_pct_bw_ht=2.5,
                kem_pct_bw_ht=3.0, kcf_n=np.array([1.2, 0.8, 2.2]) * bw, activation=np.full(3, 0.2))


def test_combination_is_the_minimum_and_names_the_lowest_part():
    fc = _frame_confidence()
    for k in range(3):
        c = fc.step(k / 60.0, **_good_inputs(fc, k))
    assert c == 1.0 and np.all(fc.parts == 1.0)
    inp = _good_inputs(fc, 3)
    inp["kam_pct_bw_ht"] = C.KAM_ENVELOPE.upper + 0.5 * C.KAM_ENVELOPE.margin
    c = fc.step(3 / 60.0, **inp)
    assert 0.0 < c < 1.0 and c == fc.parts[C.I_KAM] == fc.parts.min()
    assert C.PART_NAMES[fc.lowest] == "envelope_kam"
    # a second, lower part takes over
    inp = _good_inputs(fc, 4)
    inp["kam_pct_bw_ht"] = C.KAM_ENVELOPE.upper + 0.5 * C.KAM_ENVELOPE.margin
    inp["grf_n"] = inp["grf_n"].copy()
    inp["grf_n"][0, 2] = -0.08 * 70.0 * C.STANDARD_GRAVITY_M_S2
    c = fc.step(4 / 60.0, **inp)
    assert C.PART_NAMES[fc.lowest] == "envelope_vgrf" and c == fc.parts[C.I_VGRF] < fc.parts[C.I_KAM]
    np.testing.assert_array_equal(C.combine(np.stack([fc.parts, np.ones_like(fc.parts)])), [c, 1.0])


def test_frame_confidence_frozen_input_and_missing_markers():
    fc = _frame_confidence()
    inp = _good_inputs(fc, 0)
    seen = []
    for k in range(30):                                        # the same markers every frame for 0.5 s
        seen.append(fc.step(k / 60.0, **inp))
        assert fc.parts[C.I_VISIBILITY] == 1.0
    assert seen[0] == 1.0 and seen[int(C.FRESHNESS_HOLD_S * 60)] == 1.0
    assert seen[-1] == 0.0 and C.PART_NAMES[fc.lowest] == "freshness"
    assert np.all(np.diff(seen) <= 0.0)
    inp = _good_inputs(fc, 31)
    inp["markers_m"][:2] = np.nan                              # half the markers gone
    fc.step(31 / 60.0, **inp)
    assert fc.parts[C.I_FRESHNESS] == 1.0 and fc.parts[C.I_VISIBILITY] == 0.0
    inp = _good_inputs(fc, 32)
    inp["visibility"] = np.array([1.0, 1.0, 1.0, 0.6])          # landmark scores: 0.9 of the set
    fc.step(32 / 60.0, **inp)
    assert fc.parts[C.I_VISIBILITY] == 1.0
    inp["visibility"] = np.array([1.0, 1.0, 0.5, 0.5])
    fc.step(33 / 60.0, **inp)
    assert 0.0 < fc.parts[C.I_VISIBILITY] < 1.0


def test_activation_jump_and_nan_estimates_lower_their_parts():
    fc = _frame_confidence()
    fc.step(0.0, **_good_inputs(fc, 0))
    inp = _good_inputs(fc, 1)
    inp["activation"] = np.array([0.8, 0.2, 0.2])              # 0.2 -> 0.8 is feasible (rise allowed 0.65)
    fc.step(1 / 60.0, **inp)
    assert fc.parts[C.I_ACTIVATION_RATE] == 1.0
    inp = _good_inputs(fc, 2)
    inp["activation"] = np.array([0.0, 0.2, 0.2])              # 0.8 -> 0 in 17 ms: tau_deact forbids it
    fc.step(2 / 60.0, **inp)
    assert fc.parts[C.I_ACTIVATION_RATE] < 0.5
    inp = _good_inputs(fc, 3)
    inp["kcf_n"] = np.full(3, np.nan)
    inp["kam_pct_bw_ht"] = math.nan
    assert fc.step(3 / 60.0, **inp) == 0.0
    assert fc.parts[C.I_KCF] == 0.0 and fc.parts[C.I_KAM] == 0.0
    # muscles switched off: their parts are not judged
    off = C.FrameConfidence(C.ConfidenceParams(70.0, 1.75, muscles=False), 4, 0)
    inp = _good_inputs(off, 0)
    inp["kcf_n"] = np.full(3, np.nan)
    inp["activation"] = np.zeros(0)
    assert off.step(0.0, **inp) == 1.0


def test_summary_and_flags():
    P = np.ones((10, len(C.PART_NAMES)))
    P[2:5, C.I_DYNAMICS] = 0.2
    P[7, C.I_KEM] = 0.6
    c = C.combine(P)
    s = C.summarize(c, P)
    assert s.frames == 10 and s.mean == pytest.approx((6 + 3 * 0.2 + 0.6) / 10)
    assert s.fraction_below == pytest.approx(0.3)
    assert s.lowest_fraction["dynamics"] == pytest.approx(0.75) and s.lowest_fraction["envelope_kem"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="parts shape"):
        C.summarize(c, P[:, :3])
    kam = np.array([1.0, 2.0, 6.0, np.nan, 3.0])
    f = C.flag(C.KAM_ENVELOPE, kam)
    assert f.frames == 4 and f.fraction_outside == pytest.approx(0.25) and f.maximum == 6.0
    assert f.implausible and f.note().startswith("IMPLAUSIBLE: external knee adduction moment")
    bw = 70.0 * C.STANDARD_GRAVITY_M_S2
    flags = C.estimate_flags(70.0, foot_vgrf_n=np.array([[0.5, 0.5], [1.0, -0.2]]) * bw, kam_pct_bw_ht=kam[:2],
                             kcf_n=np.array([[1.0, 1.0, 2.0], [1.0, 1.0, 5.0]]) * bw)
    d = C.flags_dict(flags)
    assert d["vgrf"]["fraction_outside"] == 0.5 and d["kam"]["fraction_outside"] == 0.0
    assert d["kcf"]["fraction_outside"] == 0.5 and d["kcf_compartment"]["fraction_outside"] == 0.0
    assert len(C.implausible_notes(flags)) == 2
    with pytest.raises(ValueError, match="margin"):
        C.Envelope("x", "x", "u", 0.0, 1.0, 0.0, "s")
    with pytest.raises(ValueError, match="mass_kg"):
        C.ConfidenceParams(-1.0, 1.7)
