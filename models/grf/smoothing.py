"""The ground reaction estimate's filters (:mod:`models.grf`): whole-frame gaps, a zero-lag Butterworth whose ends
are extended by quadratics (so quadratic trajectories pass exactly), and a causal Butterworth primed at a ramp (no
start-up transient mid-motion), with its per-sample state.

:class:`ZeroLagLowPass` (``filtfilt`` with each end extended by the quadratic of its last 0.15 s, so quadratics pass
exactly), :class:`RampPrimedLowPass` and its per-sample :class:`RampPrimedLowPassState` (causal, primed at the ramp
through the first two samples), :func:`fill_short_gaps` (whole-frame gaps in time; long and edge gaps are left for
the caller to exclude instead of raising) and :func:`true_runs`.  Designs: :mod:`models.filters` (Butterworth,
two-pass cut-off correction, DC group delay), designed once per ``(order, cutoff, rate)`` and shared read-only;
filtering: :mod:`models.iir_kernels` (all channels in one compiled pass, equal to ``scipy.signal``'s).

Shapes: time along axis 0.  This module is pure computation: numpy, scipy and other ``models`` modules.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import interpolate, signal

from models.filters import LowPassParams, group_delay_at_dc_samples, two_pass_cutoff_correction
from models.iir_kernels import butter_cached, filtfilt0, lfilter0

__all__ = [
    "RampPrimedLowPass",
    "RampPrimedLowPassState",
    "ZeroLagLowPass",
    "fill_short_gaps",
    "quadratic_extend",
    "settle_samples",
    "true_runs",
]




def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in a 1-D boolean mask."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def fill_short_gaps(time_s: np.ndarray, x: np.ndarray, bad: np.ndarray,
                    max_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Fill the bad rows (whole frames) of ``x`` (N, ...) that form interior runs of at most ``max_gap_s``.

    Unlike :func:`models.filters.fill_gaps` (per channel, raises on long or edge gaps), this leaves runs at either end and runs
    longer than ``max_gap_s`` untouched (the caller excludes them).  One cubic spline (``not-a-knot``) in time
    ``time_s`` (N,) s through every good row, all channels at once; run length is measured with the mean step
    ``(t[-1] - t[0]) / (N - 1)``.  Needs at least 2 good rows to fill anything.  Returns ``(x_out, filled)``:
    ``x_out`` is ``x`` itself when nothing is filled, else a filled copy; ``filled`` (N,) bool.
    """
    t = np.asarray(time_s, float)
    bad = np.asarray(bad, bool)
    n = t.size
    filled = np.zeros(n, bool)
    if not bad.any():
        return x, filled
    h = float((t[-1] - t[0]) / (n - 1))
    good = np.flatnonzero(~bad)
    for a, b in true_runs(bad):
        if a == 0 or b == n:
            continue  # nothing to interpolate from on one side
        if (b - a) * h <= max_gap_s + 1e-9 * h:
            filled[a:b] = True
    if not filled.any() or good.size < 2:
        return x, np.zeros(n, bool)
    out = np.array(x, float, copy=True)
    spline = interpolate.CubicSpline(t[good], out[good], axis=0)
    out[filled] = spline(t[filled])
    return out, filled


def settle_samples(a: np.ndarray, tol: float = 1e-13) -> int:
    """Samples for the start-up transient of the recursive part ``a`` to decay below ``tol`` (from the largest pole
    radius ``r``: ``ceil(log tol / log r) + 2``; 2 for a filter without poles)."""
    r = float(np.max(np.abs(np.roots(a)))) if a.size > 1 else 0.0
    if r <= 0:
        return 2
    return math.ceil(math.log(tol) / math.log(r)) + 2


def quadratic_extend(x: np.ndarray, n_pad: int, n_fit: int) -> np.ndarray:
    """(N, ...) -> (N + 2 n_pad, ...): each end extended by the least-squares quadratic of its first/last n_fit."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    nf = max(1, min(n, n_fit))
    out = np.empty((n + 2 * n_pad, flat.shape[1]))
    out[n_pad:n_pad + n] = flat
    left, right = _extension_operators(n_pad, nf)
    out[:n_pad] = left @ flat[:nf]
    out[n_pad + n:] = right @ flat[n - nf:]
    return out.reshape((n + 2 * n_pad,) + x.shape[1:])


@lru_cache(maxsize=64)
def _extension_operators(n_pad: int, nf: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only (n_pad, nf) matrices taking the first / last ``nf`` samples to the least-squares polynomial (degree
    ``min(2, nf - 1)``, fitted about the window's centre) evaluated at the ``n_pad`` samples before / after."""
    deg = min(2, nf - 1)
    idx = np.arange(nf, dtype=float)
    centre = idx.mean()
    pinv = np.linalg.pinv(np.vander(idx - centre, deg + 1))
    left = np.vander(np.arange(-n_pad, 0) - centre, deg + 1) @ pinv
    right = np.vander(np.arange(nf, nf + n_pad) - centre, deg + 1) @ pinv
    left.setflags(write=False)
    right.setflags(write=False)
    return left, right


def _design(order: int, cutoff_hz: float, rate_hz: float, two_pass: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``(b, a)`` (cached by the parameters) of the Butterworth low-pass at ``cutoff_hz`` (raised by the
    two-pass correction when ``two_pass``)."""
    fc = cutoff_hz / two_pass_cutoff_correction(order) if two_pass else cutoff_hz
    if fc >= 0.5 * rate_hz:
        raise ValueError(f"cut-off {cutoff_hz} Hz (design {fc:.3g} Hz) must be below Nyquist ({0.5 * rate_hz} Hz)")
    p = LowPassParams(cutoff_hz=fc, sample_rate_hz=rate_hz, order=order)
    return butter_cached(int(p.order), float(p.cutoff_hz), float(p.sample_rate_hz))


@lru_cache(maxsize=256)
def _settle_cached(order: int, cutoff_hz: float, rate_hz: float) -> int:
    return settle_samples(_design(order, cutoff_hz, rate_hz, two_pass=True)[1])


@lru_cache(maxsize=256)
def _ramp_primed_design(order: int, cutoff_hz: float | None, rate_hz: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Read-only ``(b, a, zi, zr, delay_samples)`` of :class:`RampPrimedLowPass` (``a[0] == 1``)."""
    if cutoff_hz is None:
        b, a = np.ones(1), np.ones(1)
    else:
        b, a = _design(order, cutoff_hz, rate_hz, two_pass=False)
    b, a = b / a[0], a / a[0]
    if a.size > 1:
        zi = signal.lfilter_zi(b, a)
        k = settle_samples(a)
        ramp = np.arange(-k, 1, dtype=float)
        _, zr = signal.lfilter(b, a, ramp, zi=zi * ramp[0])
    else:
        zi, zr = np.zeros(0), np.zeros(0)
    out = tuple(np.asarray(v, dtype=float) for v in (b, a, zi, zr))
    for v in out:
        v.setflags(write=False)
    return out + (group_delay_at_dc_samples(b, a),)


class ZeroLagLowPass:
    """Zero-lag Butterworth (``filtfilt``, overall -3 dB at ``cutoff_hz``) with quadratic end extension.

    Each end is extended by ``n_pad`` samples of the quadratic that fits its first/last 0.15 s (``n_fit`` samples,
    at least 3); ``n_pad`` (:func:`settle_samples`) lets the start-up transient decay below 1e-13, so a quadratic
    trajectory passes exactly.  ``cutoff_hz=None``: no filtering (the extension only, ``n_pad`` 2).  Calling it on
    (N, ...) returns the *padded* smoothed signal (N + 2 n_pad, ...): sample k of the input is row ``k + n_pad``, so
    central differences are defined at both ends.
    """

    def __init__(self, order: int, cutoff_hz: float | None, rate_hz: float) -> None:
        self.rate_hz = rate_hz
        if cutoff_hz is None:
            self.ba = None
            self.n_pad = 2
        else:
            self.ba = _design(order, cutoff_hz, rate_hz, two_pass=True)
            self.n_pad = max(2, _settle_cached(order, cutoff_hz, rate_hz))
        self.n_fit = max(3, round(0.15 * rate_hz))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xp = quadratic_extend(x, self.n_pad, self.n_fit)
        if self.ba is None:
            return xp
        b, a = self.ba
        return filtfilt0(b, a, xp)  # = signal.filtfilt(b, a, xp, axis=0, padtype=None), all channels compiled

    def central_velocity(self, smoothed: np.ndarray) -> np.ndarray:
        """Central-difference velocity (N, ...) at the N input samples from the padded output of ``__call__``."""
        k0 = self.n_pad
        n = smoothed.shape[0] - 2 * k0
        return (smoothed[k0 + 1:k0 + n + 1] - smoothed[k0 - 1:k0 + n - 1]) * (0.5 * self.rate_hz)


class RampPrimedLowPass:
    """Causal Butterworth (design cut-off ``cutoff_hz``, one pass; ``None``: identity) in direct form II transposed,
    primed at a ramp so a recording that starts mid-motion has no start-up transient.

    Start-up (both :meth:`run` and :class:`RampPrimedLowPassState`): sample 0 primes the filter at the steady state
    of a constant ``x0`` (output ``x0``, derivatives 0); sample 1 re-primes it at the steady state of the ramp through
    ``x0, x1`` (as if the signal had moved at that constant rate forever).  The backward-difference histories at
    samples 1 and 2 are the ramp's (``y1 - d``, ``y1 - 2 d``, ``d = x1 - x0``).  ``delay_samples``: DC group delay.
    """

    def __init__(self, order: int, cutoff_hz: float | None, rate_hz: float) -> None:
        # designed once per (order, cutoff, rate); read-only arrays shared by every instance
        self.b, self.a, self.zi, self.zr, self.delay_samples = _ramp_primed_design(order, cutoff_hz, rate_hz)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Filtered y (n, ...) and the backward-difference histories prev (y[k-1]) and prev2 (y[k-2])."""
        n = x.shape[0]
        y = np.array(x, dtype=float, copy=True)
        if n >= 2 and self.a.size > 1:
            shape = (self.zi.size,) + (1,) * (x.ndim - 1)
            d = x[1] - x[0]
            zi = self.zi.reshape(shape) * x[0][None] + self.zr.reshape(shape) * d[None]
            y[1:], _ = lfilter0(self.b, self.a, x[1:], zi=zi)  # = signal.lfilter(..., axis=0, zi=zi), compiled
        prev = np.empty_like(y)
        prev2 = np.empty_like(y)
        prev[0] = y[0]
        prev2[0] = y[0]
        if n >= 2:
            d = x[1] - x[0]
            prev[1] = y[1] - d
            prev2[1] = y[1] - 2.0 * d
            prev[2:] = y[1:-1]
            if n >= 3:
                prev2[2] = prev[1]
                prev2[3:] = y[1:-2]
        return y, prev, prev2


class RampPrimedLowPassState:
    """Per-sample state of a :class:`RampPrimedLowPass` over a fixed channel shape (no allocation in ``step``)."""

    def __init__(self, f: RampPrimedLowPass, shape: tuple[int, ...]) -> None:
        self.f = f
        self.n = f.a.size - 1
        self.z = np.zeros((max(self.n, 1),) + shape)
        self.tmp = np.zeros(shape)
        self.b = [float(v) for v in f.b]
        self.a = [float(v) for v in f.a]
        self.zi = [float(v) for v in f.zi]
        self.zr = [float(v) for v in f.zr]

    def prime(self, x: np.ndarray) -> None:
        """Steady state of a constant signal ``x``."""
        for i in range(self.n):
            np.multiply(x, self.zi[i], out=self.z[i])

    def prime_ramp(self, x0: np.ndarray, d: np.ndarray) -> None:
        """State after a ramp that ends at ``x0`` with step ``d`` per sample."""
        for i in range(self.n):
            np.multiply(x0, self.zi[i], out=self.z[i])
            np.multiply(d, self.zr[i], out=self.tmp)
            self.z[i] += self.tmp

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        """Filter one sample ``x`` into ``y`` (both of the state's shape)."""
        n, b, a, z, tmp = self.n, self.b, self.a, self.z, self.tmp
        if n == 0:
            np.copyto(y, x)
            return
        np.multiply(x, b[0], out=y)
        y += z[0]
        for i in range(n - 1):
            np.multiply(x, b[i + 1], out=z[i])
            z[i] += z[i + 1]
            np.multiply(y, a[i + 1], out=tmp)
            z[i] -= tmp
        np.multiply(x, b[n], out=z[n - 1])
        np.multiply(y, a[n], out=tmp)
        z[n - 1] -= tmp
