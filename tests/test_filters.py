"""Tests of models/filters.py and models/grf/smoothing.py: causal filter lag, replay, NaN handling; zero-lag smoother accuracy and edges."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from models.filters import (
    CausalDerivativeFilter,
    LowPassParams,
    butterworth_lowpass,
    fill_gaps,
    group_delay_at_dc_samples,
    group_delay_s,
    savgol_window_for_cutoff,
    smooth_derivatives,
    two_pass_cutoff_correction,
)
from models.grf.smoothing import (
    RampPrimedLowPass,
    RampPrimedLowPassState,
    ZeroLagLowPass,
    fill_short_gaps,
    settle_samples,
    true_runs,
)

# --------------------------------------------------------------------------------------------------
# design and lag
# --------------------------------------------------------------------------------------------------


def test_params_are_validated():
    with pytest.raises(ValueError, match="cutoff_hz"):
        LowPassParams(cutoff_hz=40.0, sample_rate_hz=60.0)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        LowPassParams(sample_rate_hz=0.0)
    with pytest.raises(ValueError, match="order"):
        LowPassParams(order=0)


def test_design_is_scipy_butterworth_with_unity_dc_gain():
    p = LowPassParams()
    b, a = butterworth_lowpass(p)
    b_ref, a_ref = signal.butter(2, 6.0 / 30.0)
    np.testing.assert_allclose(b, b_ref)
    np.testing.assert_allclose(a, a_ref)
    assert b.sum() / a.sum() == pytest.approx(1.0, abs=1e-12)


def test_dc_group_delay_matches_scipy_and_analogue_prototype():
    p = LowPassParams(cutoff_hz=6.0, sample_rate_hz=60.0)
    b, a = butterworth_lowpass(p)
    tau = group_delay_at_dc_samples(b, a)
    _, gd = signal.group_delay((b, a), w=[1e-4], fs=60.0)
    assert tau == pytest.approx(gd[0], rel=1e-6)
    # analogue 2nd-order Butterworth: sqrt(2) / omega_c
    assert tau / 60.0 == pytest.approx(math.sqrt(2) / (2 * math.pi * 6.0), rel=0.05)
    f = CausalDerivativeFilter(1, p)
    assert f.lag_position_s == pytest.approx(0.0363, abs=5e-4)
    assert f.lag_velocity_s == pytest.approx(f.lag_position_s + 0.5 / 60.0)
    assert f.lag_acceleration_s == pytest.approx(f.lag_position_s + 1.0 / 60.0)
    assert group_delay_s(b, a, 60.0, 0.0) == pytest.approx(f.lag_position_s)


@pytest.mark.parametrize("rate", [60.0, 120.0])
def test_causal_outputs_are_delayed_sinusoids_with_the_stated_lag(rate):
    """A slow sinusoid comes out as A sin(w (t - lag)): position, velocity and acceleration, each with its lag."""
    p = LowPassParams(cutoff_hz=6.0, sample_rate_hz=rate)
    filt = CausalDerivativeFilter(1, p)
    fsig = 0.5  # Hz, well below the cut-off
    w = 2 * math.pi * fsig
    t = np.arange(0, 20.0, 1 / rate)
    x = np.sin(w * t)
    pos, vel, acc = filt.run(x)
    keep = t > 5.0  # after the start-up transient
    b, a = butterworth_lowpass(p)
    _, h = signal.freqz(b, a, worN=[w / rate])
    amp = abs(h[0])
    T = 1 / rate
    # backward differences scale the amplitude by sinc-like factors
    amp_v = amp * abs(math.sin(w * T / 2) / (w * T / 2))
    amp_a = amp * (math.sin(w * T / 2) / (w * T / 2)) ** 2
    # tolerance 1e-3 of the amplitude = a timing error of 1e-3 / w = 0.3 ms (the phase delay at 0.5 Hz differs from
    # the DC group delay by a few tens of microseconds)
    np.testing.assert_allclose(pos[keep], amp * np.sin(w * (t[keep] - filt.lag_position_s)), atol=1e-3)
    np.testing.assert_allclose(vel[keep], amp_v * w * np.cos(w * (t[keep] - filt.lag_velocity_s)), atol=1e-3 * w)
    np.testing.assert_allclose(acc[keep], -amp_a * w * w * np.sin(w * (t[keep] - filt.lag_acceleration_s)),
                               atol=1e-3 * w * w)
    # and a least-squares fit of the delay agrees with the stated lag to 0.5 ms
    lags = np.linspace(0.0, 0.08, 1601)
    err = [np.sum((pos[keep] - amp * np.sin(w * (t[keep] - L))) ** 2) for L in lags]
    assert lags[int(np.argmin(err))] == pytest.approx(filt.lag_position_s, abs=5e-4)


# --------------------------------------------------------------------------------------------------
# causal filter: replay, state, NaN, allocation
# --------------------------------------------------------------------------------------------------


def test_run_equals_repeated_step_and_lfilter():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5)).cumsum(axis=0)
    f1 = CausalDerivativeFilter(5)
    pos = np.empty(5)
    vel = np.empty(5)
    acc = np.empty(5)
    rows = []
    for r in x:
        f1.step(r, pos, vel, acc)
        rows.append(np.concatenate([pos, vel, acc]))
    rows = np.array(rows)
    f2 = CausalDerivativeFilter(5)
    p2, v2, a2 = f2.run(x)
    np.testing.assert_allclose(rows[:, :5], p2, rtol=0, atol=1e-9)
    np.testing.assert_allclose(rows[:, 5:10], v2, rtol=0, atol=1e-7)
    np.testing.assert_allclose(rows[:, 10:], a2, rtol=0, atol=1e-5)
    # same as scipy lfilter started in the steady state of the first sample
    b, a = butterworth_lowpass(LowPassParams())
    ref, _ = signal.lfilter(b, a, x, axis=0, zi=signal.lfilter_zi(b, a)[:, None] * x[0])
    np.testing.assert_allclose(p2, ref, atol=1e-9)
    # run continues from the state: splitting a trial gives the same result
    f3 = CausalDerivativeFilter(5)
    pa = f3.run(x[:100])
    pb = f3.run(x[100:])
    np.testing.assert_allclose(np.vstack([pa[0], pb[0]]), p2, atol=1e-12)
    np.testing.assert_allclose(np.vstack([pa[2], pb[2]]), a2, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=6), st.integers(1, 40))
def test_constant_signal_passes_with_zero_derivatives(values, n):
    x = np.tile(np.array(values), (n, 1))
    f = CausalDerivativeFilter(len(values))
    pos, vel, acc = f.run(x)
    np.testing.assert_allclose(pos, x, atol=1e-9 * (1 + np.abs(x).max()))
    np.testing.assert_allclose(vel, 0.0, atol=1e-6 * (1 + np.abs(x).max()))
    np.testing.assert_allclose(acc, 0.0, atol=1e-3 * (1 + np.abs(x).max()))


def test_nan_channels_are_held_and_counted():
    f = CausalDerivativeFilter(2)
    pos, vel, acc = np.empty(2), np.empty(2), np.empty(2)
    # not initialised while the first sample has NaN
    assert f.step(np.array([np.nan, 1.0]), pos, vel, acc) == 1
    assert np.isnan(pos).all()
    assert f.step(np.array([1.0, 1.0]), pos, vel, acc) == 0
    np.testing.assert_allclose(pos, [1.0, 1.0])
    for _ in range(50):
        n = f.step(np.array([np.nan, 1.0]), pos, vel, acc)
        assert n == 1
    np.testing.assert_allclose(pos, [1.0, 1.0], atol=1e-12)  # held at the last finite input
    assert np.isfinite(vel).all() and np.isfinite(acc).all()
    # batch run holds the same way
    g = CausalDerivativeFilter(2)
    x = np.array([[1.0, 1.0], [2.0, np.nan], [np.nan, np.nan], [3.0, 4.0]])
    p, _, _ = g.run(x)
    h = CausalDerivativeFilter(2)
    p_ref, _, _ = h.run(np.array([[1.0, 1.0], [2.0, 1.0], [2.0, 1.0], [3.0, 4.0]]))
    np.testing.assert_allclose(p, p_ref)


def test_step_allocates_no_arrays():
    c = 2000  # one array of this size would be 16 kB
    f = CausalDerivativeFilter(c)
    x = np.random.default_rng(0).normal(size=c)
    pos, vel, acc = np.empty(c), np.empty(c), np.empty(c)
    f.step(x, pos, vel, acc)
    x[3] = np.nan
    f.step(x, pos, vel, acc)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            f.step(x, pos, vel, acc)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < 4000, f"step allocated {peak - before} bytes at peak"
    assert current - before < 1000


# --------------------------------------------------------------------------------------------------
# zero-lag smoother
# --------------------------------------------------------------------------------------------------


def test_two_pass_cutoff_correction_puts_minus_3db_at_the_cutoff():
    assert two_pass_cutoff_correction(2) == pytest.approx(0.802, abs=1e-3)
    fs, fc = 120.0, 6.0
    t = np.arange(0, 30.0, 1 / fs)
    x = np.sin(2 * np.pi * fc * t)
    y = smooth_derivatives(x, fs, cutoff_hz=fc).position
    mid = slice(len(t) // 4, 3 * len(t) // 4)
    amp = np.sqrt(2 * np.mean(y[mid] ** 2))
    assert amp == pytest.approx(1 / math.sqrt(2), abs=0.01)


@pytest.mark.parametrize("method", ["butterworth", "savgol"])
def test_smoother_has_no_lag_and_accurate_derivatives(method):
    fs = 120.0
    t = np.arange(0, 3.0, 1 / fs)
    w = 2 * np.pi * 1.0
    x = np.column_stack([np.sin(w * t), 0.5 * np.cos(w * t) + 0.2])
    r = smooth_derivatives(x, fs, method=method, cutoff_hz=6.0)
    assert r.position.shape == x.shape and not r.filled.any()
    mid = slice(30, -30)
    np.testing.assert_allclose(r.position[mid], x[mid], atol=5e-3)
    v_true = np.column_stack([w * np.cos(w * t), -0.5 * w * np.sin(w * t)])
    a_true = np.column_stack([-w * w * np.sin(w * t), -0.5 * w * w * np.cos(w * t)])
    np.testing.assert_allclose(r.velocity[mid], v_true[mid], atol=0.01 * w)
    np.testing.assert_allclose(r.acceleration[mid], a_true[mid], atol=0.03 * w * w)
    # zero phase: best-fit delay of the smoothed signal is 0
    lags = np.linspace(-0.01, 0.01, 201)
    err = [np.sum((r.position[mid, 0] - np.sin(w * (t[mid] - L))) ** 2) for L in lags]
    assert abs(lags[int(np.argmin(err))]) <= 2e-4


@pytest.mark.parametrize("method", ["butterworth", "savgol"])
def test_edges_pass_a_ramp_exactly(method):
    fs = 100.0
    t = np.arange(0, 1.0, 1 / fs)
    x = 3.0 * t - 1.0
    r = smooth_derivatives(x, fs, method=method)
    np.testing.assert_allclose(r.position, x, atol=1e-9)
    np.testing.assert_allclose(r.velocity, 3.0, atol=1e-7)
    np.testing.assert_allclose(r.acceleration, 0.0, atol=1e-4)


def test_savgol_window_is_chosen_for_the_cutoff():
    win = savgol_window_for_cutoff(6.0, 120.0, 3)
    assert win % 2 == 1
    for wl, expect_below in ((win, True), (win - 2, False)):
        _, h = signal.freqz(signal.savgol_coeffs(wl, 3), worN=[2 * np.pi * 6.0 / 120.0])
        assert bool(abs(h[0]) <= 1 / math.sqrt(2)) is expect_below


def test_short_gaps_are_spline_filled_and_flagged():
    fs = 100.0
    t = np.arange(0, 2.0, 1 / fs)
    x = np.sin(2 * np.pi * 0.8 * t)
    xg = x.copy()
    xg[50:56] = np.nan
    filled, mask = fill_gaps(xg, fs, max_gap_s=0.1)
    assert mask.sum() == 6 and mask[50:56].all()
    np.testing.assert_allclose(filled[50:56], x[50:56], atol=1e-4)
    r = smooth_derivatives(np.column_stack([xg, x]), fs)
    assert r.filled[:, 0].sum() == 6 and not r.filled[:, 1].any()
    np.testing.assert_allclose(r.position[:, 0], r.position[:, 1], atol=1e-4)


def test_long_and_edge_gaps_raise_with_the_channel_named():
    fs = 100.0
    x = np.sin(np.arange(200) / 20.0)
    long_gap = x.copy()
    long_gap[50:80] = np.nan
    with pytest.raises(ValueError, match=r"channel 'knee'.*50\.\.79.*max_gap_s"):
        smooth_derivatives(long_gap, fs, channel_names=("knee",))
    edge = x.copy()
    edge[:3] = np.nan
    with pytest.raises(ValueError, match="start of the signal"):
        smooth_derivatives(edge, fs)
    edge = x.copy()
    edge[-1] = np.nan
    with pytest.raises(ValueError, match="end of the signal"):
        fill_gaps(edge, fs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown method"):
        smooth_derivatives(np.zeros(10), 100.0, method="spline")
    with pytest.raises(ValueError, match="at least 4"):
        smooth_derivatives(np.zeros(3), 100.0)
    with pytest.raises(ValueError, match="shape"):
        CausalDerivativeFilter(3).run(np.zeros((10, 2)))


# --------------------------------------------------------------------------------------------------
# whole-frame gaps, zero-lag with quadratic end extension, ramp-primed causal (models/grf)
# --------------------------------------------------------------------------------------------------


def test_true_runs():
    assert true_runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [(0, 2), (3, 4), (6, 7)]
    assert true_runs(np.zeros(4, bool)) == []
    assert true_runs(np.ones(3, bool)) == [(0, 3)]


def test_fill_short_gaps_fills_interior_frames_and_leaves_long_and_edge_gaps():
    """A cubic in time (non-uniform stamps, as lab files round them) is recovered exactly by the not-a-knot spline;
    a gap longer than max_gap_s and gaps at either end stay NaN; nothing bad returns the input itself."""
    rate = 100.0
    t = np.arange(60) / rate + np.where(np.arange(60) % 3 == 0, 4e-4, 0.0)
    x = np.stack([1.0 + 2.0 * t - 3.0 * t ** 2 + 5.0 * t ** 3, -t ** 3], axis=1)
    assert fill_short_gaps(t, x, np.zeros(60, bool), 0.1)[0] is x
    bad = np.zeros(60, bool)
    bad[:2] = bad[10:14] = bad[30:45] = bad[-1] = True
    xb = np.where(bad[:, None], np.nan, x)
    out, filled = fill_short_gaps(t, xb, bad, 0.1)
    assert filled.sum() == 4 and filled[10:14].all()
    np.testing.assert_allclose(out[10:14], x[10:14], rtol=0, atol=1e-12)
    assert np.isnan(out[bad & ~filled]).all() and np.isnan(xb[10:14]).all()  # input untouched
    # the length limit is in seconds: 4 frames = 0.04 s
    assert not fill_short_gaps(t, xb, bad, 0.035)[1].any()


@pytest.mark.parametrize("cutoff", [6.0, None])
def test_zero_lag_lowpass_passes_a_quadratic_exactly(cutoff):
    rate = 120.0
    t = np.arange(90) / rate
    x = np.stack([0.3 + 1.2 * t - 4.9 * t ** 2, 2.0 * t ** 2], axis=1)
    zl = ZeroLagLowPass(2, cutoff, rate)
    y = zl(x)
    assert y.shape == (90 + 2 * zl.n_pad, 2)
    np.testing.assert_allclose(y[zl.n_pad:zl.n_pad + 90], x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(zl.central_velocity(y), np.stack([1.2 - 9.8 * t, 4.0 * t], axis=1), rtol=0, atol=1e-10)


def test_zero_lag_lowpass_cutoff_above_nyquist_is_named():
    with pytest.raises(ValueError, match="Nyquist"):
        ZeroLagLowPass(2, 50.0, 120.0)  # design 62 Hz for two passes


def test_settle_samples_is_where_the_transient_has_decayed():
    b, a = butterworth_lowpass(LowPassParams(cutoff_hz=6.0, sample_rate_hz=120.0))
    k = settle_samples(a)
    h = signal.lfilter(b, a, np.r_[1.0, np.zeros(k + 10)])
    assert np.max(np.abs(h[k:])) < 1e-12 < np.max(np.abs(h[k - 20:k]))


def test_ramp_primed_lowpass_has_no_transient_on_a_ramp_and_step_equals_run():
    """Primed at the ramp through the first two samples, the causal filter passes a ramp delayed by exactly its DC
    group delay from sample 1 on; the per-sample state gives what the vectorised run gives."""
    rate = 60.0
    f = RampPrimedLowPass(2, 6.0, rate)
    assert f.delay_samples == pytest.approx(2.18, abs=0.01)
    n = 50
    x = np.stack([0.7 + 0.02 * np.arange(n), -0.5 * np.arange(n)], axis=1)
    y, prev, prev2 = f.run(x)
    d = x[1] - x[0]
    np.testing.assert_allclose(y[1:], x[1:] - f.delay_samples * d, rtol=0, atol=1e-10)
    np.testing.assert_allclose(prev[2:], y[1:-1], rtol=0, atol=0)
    np.testing.assert_allclose(prev2[1], y[1] - 2 * d, rtol=0, atol=0)
    rng = np.random.default_rng(3)
    xr = np.cumsum(rng.normal(size=(n, 2)), axis=0)
    yr, _, _ = f.run(xr)
    st_ = RampPrimedLowPassState(f, (2,))
    ys = np.empty_like(xr)
    for k in range(n):
        if k == 0:
            st_.prime(xr[0])
        elif k == 1:
            st_.prime_ramp(xr[0], xr[1] - xr[0])
        st_.step(xr[k], ys[k])
    np.testing.assert_allclose(ys, yr, rtol=0, atol=1e-9)
