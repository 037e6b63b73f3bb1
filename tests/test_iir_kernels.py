"""The compiled all-channel IIR kernels (models/iir_kernels.py) against scipy run channel by channel, and the
filters built on them (models/filters.py: smooth_derivatives; models/grf/smoothing.py: ZeroLagLowPass,
RampPrimedLowPass) against the scipy calls they replaced.  Agreement to 1e-12 of the signal's scale (they agree to the last bit here)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from models.filters import LowPassParams, butterworth_lowpass, smooth_derivatives, two_pass_cutoff_correction
from models.grf.smoothing import RampPrimedLowPass, ZeroLagLowPass, quadratic_extend
from models.iir_kernels import butter_cached, filtfilt0, lfilter0, lfilter_zi_cached


def _signal(shape, seed=0):
    """A random walk (N, ...) with a large offset (end transients and rounding both visible)."""
    rng = np.random.default_rng(seed)
    return 100.0 + rng.normal(size=shape).cumsum(axis=0)


def _tol(x):
    return 1e-12 * max(1.0, float(np.abs(x).max()))


@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
def test_filtfilt0_equals_scipy_per_channel(order):
    b, a = butter_cached(order, 7.5, 120.0)
    x = _signal((300, 4, 7), order)
    y = filtfilt0(b, a, x)
    assert y.shape == x.shape
    for i in range(4):
        for j in range(7):
            ref = signal.filtfilt(b, a, x[:, i, j], padtype=None)
            np.testing.assert_allclose(y[:, i, j], ref, rtol=0, atol=_tol(ref))


@pytest.mark.parametrize("order", [1, 2, 5])
def test_lfilter0_with_and_without_state_equals_scipy_per_channel(order):
    b, a = butter_cached(order, 10.0, 60.0)
    x = _signal((120, 5), 3)
    zi = np.random.default_rng(1).normal(size=(order, 5))
    for z0 in (None, zi):
        y, zf = lfilter0(b, a, x, z0)
        for j in range(5):
            ry, rz = signal.lfilter(b, a, x[:, j], zi=np.zeros(order) if z0 is None else z0[:, j])
            np.testing.assert_allclose(y[:, j], ry, rtol=0, atol=_tol(ry))
            np.testing.assert_allclose(zf[:, j], rz, rtol=0, atol=_tol(rz))


def test_non_normalised_denominator_and_bad_shapes():
    b, a = butter_cached(2, 5.0, 100.0)
    x = _signal((50, 2))
    np.testing.assert_allclose(filtfilt0(3.0 * b, 3.0 * a, x), signal.filtfilt(b, a, x, axis=0, padtype=None),
                               rtol=0, atol=_tol(x))
    with pytest.raises(ValueError, match="same length"):
        filtfilt0(b[:2], a, x)


def test_cached_designs_are_read_only_and_callers_get_copies():
    b, a = butter_cached(2, 6.0, 120.0)
    rb, ra = signal.butter(2, 6.0, fs=120.0)
    np.testing.assert_array_equal(b, rb)
    np.testing.assert_array_equal(a, ra)
    assert butter_cached(2, 6.0, 120.0)[0] is b
    with pytest.raises(ValueError):
        b[0] = 1.0
    with pytest.raises(ValueError):
        lfilter_zi_cached(b, a)[0] = 1.0
    bb, _ = butterworth_lowpass(LowPassParams(6.0, 120.0, 2))
    bb[0] = 5.0                              # a caller's copy: the cache is untouched
    np.testing.assert_array_equal(butter_cached(2, 6.0, 120.0)[0], rb)


@pytest.mark.parametrize("n", [4, 10, 300])
def test_smooth_derivatives_equals_scipy_odd_padded_filtfilt_per_channel(n):
    """The kinematics smoother: one compiled pass over all channels = scipy's filtfilt (odd padding) per channel;
    n = 4 and 10 exercise padlen = N - 1."""
    x = _signal((n, 6), n)
    sm = smooth_derivatives(x, 120.0, cutoff_hz=6.0)
    b, a = signal.butter(2, 6.0 / two_pass_cutoff_correction(2), fs=120.0)
    padlen = min(n - 1, int(np.ceil(3.0 * 120.0 / 6.0)))
    for j in range(6):
        ref = signal.filtfilt(b, a, x[:, j], padtype="odd", padlen=padlen)
        np.testing.assert_allclose(sm.position[:, j], ref, rtol=0, atol=_tol(ref))


def test_zero_lag_and_ramp_primed_equal_their_scipy_forms():
    x = _signal((200, 3, 4), 9)
    zl = ZeroLagLowPass(2, 6.0, 120.0)
    xp = quadratic_extend(x, zl.n_pad, zl.n_fit)
    b, a = zl.ba
    ref = signal.filtfilt(b, a, xp, axis=0, padtype=None)
    np.testing.assert_allclose(zl(x), ref, rtol=0, atol=_tol(ref))
    f = RampPrimedLowPass(2, 6.0, 120.0)
    y, _, _ = f.run(x)
    zi = f.zi.reshape(2, 1, 1) * x[0][None] + f.zr.reshape(2, 1, 1) * (x[1] - x[0])[None]
    ref_y, _ = signal.lfilter(f.b, f.a, x[1:], axis=0, zi=zi)
    np.testing.assert_allclose(y[1:], ref_y, rtol=0, atol=_tol(ref_y))
    assert RampPrimedLowPass(2, 6.0, 120.0).zi is f.zi     # designed once
    with pytest.raises(ValueError):
        f.zr[0] = 0.0
