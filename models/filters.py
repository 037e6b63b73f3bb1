"""Smoothing and differentiation of sampled kinematics: a causal real-time filter and a zero-lag offline smoother.

Two tools, for two situations
-----------------------------
:class:`CausalDerivativeFilter` (the 60 Hz estimation loop)
    A Butterworth low-pass (default 2nd order, 6 Hz cut-off at 60 Hz) run sample by sample in transposed direct form II,
    followed by backward differences::

        y[n]   = sum_k b_k x[n-k] - sum_{k>=1} a_k y[n-k]          (filtered position)
        yd[n]  = (y[n] - y[n-1]) / T                               (velocity)
        ydd[n] = (y[n] - 2 y[n-1] + y[n-2]) / T**2                  (acceleration)

    It is causal, so it lags.  At frequencies well below the cut-off the lag is the filter's group delay at DC,
    computed from the coefficients (:func:`group_delay_at_dc_samples`)::

        tau_0 = sum_k k b_k / sum_k b_k - sum_k k a_k / sum_k a_k    (samples)

    and each backward difference adds its own centring offset: half a sample for the velocity, one sample for the
    acceleration.  So ``lag_position_s = tau_0 T``, ``lag_velocity_s = (tau_0 + 1/2) T``,
    ``lag_acceleration_s = (tau_0 + 1) T``.  For the default design (2nd order, 6 Hz at 60 Hz: tau_0 = 2.18 samples)
    that is 36.3 ms, 44.6 ms and 52.9 ms (the analogue prototype gives sqrt(2) / (2 pi fc) = 37.5 ms for the
    position); at 120 Hz with the same cut-off, 37.2 / 41.4 / 45.5 ms.
    ``tests/test_filters.py`` checks the numbers against a delayed sinusoid.

:func:`smooth_derivatives` (whole trials, offline)
    Zero phase: either ``scipy.signal.filtfilt`` of the same Butterworth design followed by central differences
    (``method="butterworth"``), or Savitzky-Golay smoothing and differentiation (``method="savgol"``).

    * Cut-off of the forward-backward filter: two passes square the magnitude response, which moves the -3 dB point
      down.  With ``correct_two_pass_cutoff=True`` (default) the single-pass design frequency is raised by
      ``1 / (sqrt(2) - 1) ** (1 / (2 order))`` (1.247 for order 2; Winter, *Biomechanics and Motor Control of Human
      Movement*, 4th ed., 2009, sec. 2.2.4.4) so that the *overall* -3 dB point is ``cutoff_hz``.
    * Edges (Butterworth): each end is extended by an odd reflection about the end sample (``padtype="odd"``: value and
      slope are continuous, so a ramp passes unchanged) of ``ceil(3 fs / fc)`` samples (at most N - 1); derivatives
      use second-order central differences inside and second-order one-sided differences at the two ends.
    * Edges (Savitzky-Golay): ``mode="interp"``: the last window at each end is fitted by one polynomial, which is
      evaluated (and differentiated) at the edge samples.  The window is the shortest odd length whose smoothing
      response is at or below -3 dB at ``cutoff_hz`` unless ``savgol_window`` is given.
    * NaN: interior gaps up to ``max_gap_s`` (default 0.1 s) are filled by a cubic spline through each channel's valid
      samples before filtering and flagged in :attr:`SmoothedDerivatives.filled`; a longer gap, or NaN in the first or
      last sample of a channel (nothing to interpolate from), raises ``ValueError`` naming the channel and the samples.
      Nothing is extrapolated silently.

NaN in the causal filter: a NaN sample of a channel is replaced by that channel's last finite input (zero-order
hold); :meth:`CausalDerivativeFilter.step` returns how many channels it held so the caller can raise a fault (faults
are values, never exceptions thrown in the loop).

The ground reaction estimate's own filters (quadratic end extension, ramp-primed causal, whole-frame gaps) are in
:mod:`models.grf.smoothing`, built on this module's designs.

Shapes: a signal is ``(N,)`` or ``(N, C)`` (N samples, C channels); time runs along axis 0.  Units: whatever the input
is in, per second and per second squared for the derivatives.

This module is pure computation: numpy and scipy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import interpolate, signal

from models.iir_kernels import butter_cached, filtfilt0

__all__ = [
    "LowPassParams",
    "butterworth_lowpass",
    "group_delay_at_dc_samples",
    "group_delay_s",
    "CausalDerivativeFilter",
    "SmoothedDerivatives",
    "fill_gaps",
    "smooth_derivatives",
    "savgol_window_for_cutoff",
    "two_pass_cutoff_correction",
]


# --------------------------------------------------------------------------------------------------
# design
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LowPassParams:
    """Butterworth low-pass design: ``cutoff_hz`` (-3 dB of one pass), ``sample_rate_hz``, ``order``.

    Validated at construction: ``0 < cutoff_hz < sample_rate_hz / 2`` and ``1 <= order <= 8``.
    """

    cutoff_hz: float = 6.0
    sample_rate_hz: float = 60.0
    order: int = 2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0):
            raise ValueError(f"sample_rate_hz must be a positive finite number, got {self.sample_rate_hz!r}")
        nyq = 0.5 * self.sample_rate_hz
        if not (math.isfinite(self.cutoff_hz) and 0 < self.cutoff_hz < nyq):
            raise ValueError(
                f"cutoff_hz must lie in (0, {nyq:g}) (the Nyquist frequency of {self.sample_rate_hz:g} Hz), "
                f"got {self.cutoff_hz!r}"
            )
        if int(self.order) != self.order or not (1 <= self.order <= 8):
            raise ValueError(f"order must be an integer in 1..8, got {self.order!r}")

    @property
    def sample_period_s(self) -> float:
        return 1.0 / self.sample_rate_hz


def butterworth_lowpass(params: LowPassParams) -> tuple[np.ndarray, np.ndarray]:
    """Digital Butterworth low-pass ``(b, a)`` (``scipy.signal.butter``, bilinear with pre-warping), unity DC gain.
    Designed once per ``(order, cutoff, rate)`` (:func:`models.iir_kernels.butter_cached`); the arrays are copies."""
    b, a = butter_cached(int(params.order), float(params.cutoff_hz), float(params.sample_rate_hz))
    return b.copy(), a.copy()


def group_delay_at_dc_samples(b: np.ndarray, a: np.ndarray) -> float:
    """Group delay of ``H(z) = B(z) / A(z)`` at zero frequency, in samples.

    ``tau(0) = sum_k k b_k / sum_k b_k - sum_k k a_k / sum_k a_k`` (the limit of ``-d arg H / d omega`` at 0).
    """
    b = np.asarray(b, dtype=float)
    a = np.asarray(a, dtype=float)
    kb = np.arange(b.size)
    ka = np.arange(a.size)
    sb, sa = b.sum(), a.sum()
    if sb == 0 or sa == 0:
        raise ValueError("the filter has a zero or pole at DC; its DC group delay is undefined")
    return float((kb @ b) / sb - (ka @ a) / sa)


def group_delay_s(b: np.ndarray, a: np.ndarray, sample_rate_hz: float, frequency_hz: float) -> float:
    """Group delay in seconds at ``frequency_hz`` (``scipy.signal.group_delay``); 0 Hz uses the closed form."""
    if frequency_hz == 0:
        return group_delay_at_dc_samples(b, a) / sample_rate_hz
    _, gd = signal.group_delay((b, a), w=[frequency_hz], fs=sample_rate_hz)
    return float(gd[0]) / sample_rate_hz


def two_pass_cutoff_correction(order: int, passes: int = 2) -> float:
    """Factor ``C = (2**(1/passes) - 1) ** (1 / (2 order))``; design a single pass at ``fc / C`` so that ``passes``
    passes have their -3 dB point at ``fc`` (Winter 2009).  0.802 for order 2, two passes."""
    return float((2.0 ** (1.0 / passes) - 1.0) ** (1.0 / (2 * order)))


# --------------------------------------------------------------------------------------------------
# causal, per sample
# --------------------------------------------------------------------------------------------------


class CausalDerivativeFilter:
    """Causal low-pass + backward differences for ``n_channels`` signals, one sample per :meth:`step`.

    ``step`` keeps its state in preallocated arrays and allocates no array.  The first finite sample initialises the
    filter to the steady state of a constant signal at that value (no start-up transient; velocity and acceleration
    start at 0).  Lags: :attr:`lag_position_s`, :attr:`lag_velocity_s`, :attr:`lag_acceleration_s` (see the module
    docstring).  :meth:`run` processes a whole ``(N, C)`` array and gives the same numbers as repeated ``step``.
    """

    def __init__(self, n_channels: int, params: LowPassParams | None = None) -> None:
        if int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        self.params = params if params is not None else LowPassParams()
        self.n_channels = int(n_channels)
        b, a = butterworth_lowpass(self.params)
        # normalise so that a[0] == 1
        self._b = b / a[0]
        self._a = a / a[0]
        self._order = self._a.size - 1
        self._zi_unit = signal.lfilter_zi(self._b, self._a)  # steady state for a unit constant input
        self._T = self.params.sample_period_s
        self._inv_T = 1.0 / self._T
        self._inv_T2 = self._inv_T * self._inv_T
        c = self.n_channels
        self._z = np.zeros((self._order, c))  # transposed direct form II state
        self._x = np.zeros(c)  # current input after NaN hold
        self._x_last = np.zeros(c)  # last finite input
        self._y = np.zeros(c)
        self._y1 = np.zeros(c)  # y[n-1]
        self._y2 = np.zeros(c)  # y[n-2]
        self._tmp = np.zeros(c)
        self._tmp2 = np.zeros(c)
        self._nan = np.zeros(c, dtype=bool)
        self._initialised = False
        self._tau0 = group_delay_at_dc_samples(self._b, self._a)

    # -- lags ------------------------------------------------------------------------------------

    @property
    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """``(b, a)`` with ``a[0] == 1``."""
        return self._b.copy(), self._a.copy()

    @property
    def lag_position_s(self) -> float:
        """Low-frequency lag of the filtered position: the filter's DC group delay, in seconds."""
        return self._tau0 * self._T

    @property
    def lag_velocity_s(self) -> float:
        """Low-frequency lag of the velocity: group delay + half a sample (backward difference)."""
        return (self._tau0 + 0.5) * self._T

    @property
    def lag_acceleration_s(self) -> float:
        """Low-frequency lag of the acceleration: group delay + one sample (second backward difference)."""
        return (self._tau0 + 1.0) * self._T

    # -- state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything; the next finite sample initialises the filter again."""
        self._initialised = False
        self._z.fill(0.0)
        self._y.fill(0.0)
        self._y1.fill(0.0)
        self._y2.fill(0.0)
        self._x_last.fill(0.0)

    def _prime(self, x: np.ndarray) -> None:
        # steady state of a constant signal equal to x: z_i = zi_unit_i * x, outputs y = x
        for i in range(self._order):
            np.multiply(x, self._zi_unit[i], out=self._z[i])
        self._y1[:] = x
        self._y2[:] = x
        self._x_last[:] = x
        self._initialised = True

    def step(
        self,
        x: np.ndarray,
        position_out: np.ndarray,
        velocity_out: np.ndarray,
        acceleration_out: np.ndarray,
    ) -> int:
        """Filter one sample ``x`` (C,) into the three preallocated (C,) outputs; returns the number of NaN channels.

        NaN channels are held at their last finite input.  Until the first all-finite sample arrives the filter is
        not initialised and the outputs are NaN.
        """
        np.isnan(x, out=self._nan)
        n_nan = int(np.count_nonzero(self._nan))
        if not self._initialised:
            if n_nan:
                position_out.fill(np.nan)
                velocity_out.fill(np.nan)
                acceleration_out.fill(np.nan)
                return n_nan
            self._prime(x)
        xx = self._x
        if n_nan:
            np.copyto(xx, x)
            np.copyto(xx, self._x_last, where=self._nan)
        else:
            np.copyto(xx, x)
        np.copyto(self._x_last, xx)

        b, a, z, y, tmp, tmp2 = self._b, self._a, self._z, self._y, self._tmp, self._tmp2
        n = self._order
        # y = b0 x + z0 ; z_i = b_{i+1} x - a_{i+1} y + z_{i+1} ; z_{n-1} = b_n x - a_n y
        np.multiply(xx, b[0], out=y)
        y += z[0]
        for i in range(n):
            zi = z[i]
            np.multiply(xx, b[i + 1], out=tmp2)  # b_{i+1} x
            np.multiply(y, a[i + 1], out=tmp)  # a_{i+1} y
            if i + 1 < n:
                # z_i uses the *old* z_{i+1}, which is updated only in the next iteration
                np.add(tmp2, z[i + 1], out=zi)
            else:
                np.copyto(zi, tmp2)
            zi -= tmp

        # outputs
        np.copyto(position_out, y)
        np.subtract(y, self._y1, out=velocity_out)
        velocity_out *= self._inv_T
        np.subtract(y, self._y1, out=acceleration_out)
        acceleration_out -= self._y1
        acceleration_out += self._y2
        acceleration_out *= self._inv_T2
        np.copyto(self._y2, self._y1)
        np.copyto(self._y1, y)
        return n_nan

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whole array ``(N,)`` or ``(N, C)`` -> ``(position, velocity, acceleration)``, each like ``x``.

        Starts from the current state (a fresh filter initialises on the first sample, as ``step`` does) and leaves
        the state as if ``step`` had been called on every row; NaN samples are held like in ``step``.  The first
        rows must be finite for a fresh filter (``ValueError`` otherwise).
        """
        x = np.asarray(x, dtype=float)
        squeeze = x.ndim == 1
        x2 = x[:, None] if squeeze else x
        if x2.ndim != 2 or x2.shape[1] != self.n_channels:
            raise ValueError(f"run expects shape (N, {self.n_channels}), got {x.shape}")
        n = x2.shape[0]
        pos = np.empty_like(x2)
        vel = np.empty_like(x2)
        acc = np.empty_like(x2)
        if n == 0:
            return (pos[:, 0], vel[:, 0], acc[:, 0]) if squeeze else (pos, vel, acc)
        if not self._initialised:
            if np.isnan(x2[0]).any():
                raise ValueError("run: the first sample has NaN channels; the filter cannot be initialised from it")
            self._prime(x2[0])
        # zero-order hold of NaN per channel, continuing from the last finite input
        xh = np.vstack([self._x_last[None, :], x2])
        if np.isnan(xh).any():
            mask = np.isnan(xh)
            idx = np.where(~mask, np.arange(n + 1)[:, None], 0)
            np.maximum.accumulate(idx, axis=0, out=idx)
            xh = np.take_along_axis(xh, idx, axis=0)
        xh = xh[1:]
        y, zf = signal.lfilter(self._b, self._a, xh, axis=0, zi=self._z)
        ypad = np.vstack([self._y2[None, :], self._y1[None, :], y])
        pos[:] = y
        vel[:] = (ypad[2:] - ypad[1:-1]) * self._inv_T
        acc[:] = (ypad[2:] - 2.0 * ypad[1:-1] + ypad[:-2]) * self._inv_T2
        self._z[:] = zf
        self._x_last[:] = xh[-1]
        self._y1[:] = ypad[-1]
        self._y2[:] = ypad[-2]
        if squeeze:
            return pos[:, 0], vel[:, 0], acc[:, 0]
        return pos, vel, acc


# --------------------------------------------------------------------------------------------------
# offline, zero lag
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SmoothedDerivatives:
    """Zero-lag smoothed signal and its first two time derivatives, shaped like the input.

    ``filled`` marks samples that were NaN and were filled by the gap interpolation.
    """

    position: np.ndarray
    velocity: np.ndarray  # units per second
    acceleration: np.ndarray  # units per second squared
    filled: np.ndarray  # bool
    sample_rate_hz: float
    method: str
    cutoff_hz: float
    details: dict = field(default_factory=dict)


def _as_2d(x: np.ndarray) -> tuple[np.ndarray, bool]:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        return x[:, None], True
    if x.ndim != 2:
        raise ValueError(f"expected a signal of shape (N,) or (N, C), got {x.shape}")
    return x, False


def _channel_name(names: tuple[str, ...] | None, j: int) -> str:
    return repr(names[j]) if names is not None and j < len(names) else f"{j}"


def fill_gaps(
    x: np.ndarray,
    sample_rate_hz: float,
    *,
    max_gap_s: float = 0.1,
    channel_names: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill interior NaN gaps up to ``max_gap_s`` by a cubic spline through each channel's finite samples.

    Returns ``(filled_copy, mask_of_filled_samples)``, shaped like ``x``.  ``ValueError`` (naming the channel and the
    sample range) for a longer gap, for NaN in a channel's first or last sample, or for fewer than 4 finite samples.
    """
    x2, squeeze = _as_2d(x)
    out = x2.copy()
    mask = np.isnan(x2)
    n = x2.shape[0]
    max_gap = int(math.floor(max_gap_s * sample_rate_hz + 1e-9))
    for j in np.flatnonzero(mask.any(axis=0)):
        m = mask[:, j]
        name = _channel_name(channel_names, int(j))
        if m[0] or m[-1]:
            first_bad = int(np.flatnonzero(m)[0])
            raise ValueError(
                f"channel {name}: NaN at the {'start' if m[0] else 'end'} of the signal (first NaN at sample "
                f"{first_bad} of {n}); edge gaps cannot be interpolated - trim the trial"
            )
        # runs of NaN
        d = np.diff(m.astype(np.int8))
        starts = np.flatnonzero(d == 1) + 1
        ends = np.flatnonzero(d == -1) + 1  # exclusive
        lengths = ends - starts
        if lengths.size and lengths.max() > max_gap:
            k = int(np.argmax(lengths))
            raise ValueError(
                f"channel {name}: gap of {int(lengths[k])} samples ({lengths[k] / sample_rate_hz:.3f} s) at samples "
                f"{int(starts[k])}..{int(ends[k]) - 1} exceeds max_gap_s={max_gap_s:g} s ({max_gap} samples)"
            )
        good = np.flatnonzero(~m)
        if good.size < 4:
            raise ValueError(f"channel {name}: only {good.size} finite samples; cannot interpolate")
        spline = interpolate.CubicSpline(good.astype(float), x2[good, j], bc_type="not-a-knot")
        bad = np.flatnonzero(m)
        out[bad, j] = spline(bad.astype(float))
    if squeeze:
        return out[:, 0], mask[:, 0]
    return out, mask


def savgol_window_for_cutoff(cutoff_hz: float, sample_rate_hz: float, polyorder: int = 3) -> int:
    """Shortest odd Savitzky-Golay window (samples) whose smoothing gain at ``cutoff_hz`` is <= 1/sqrt(2)."""
    if not 0 < cutoff_hz < 0.5 * sample_rate_hz:
        raise ValueError(f"cutoff_hz must lie in (0, {0.5 * sample_rate_hz:g}), got {cutoff_hz!r}")
    w = np.array([2 * np.pi * cutoff_hz / sample_rate_hz])
    win = polyorder + 2 if (polyorder + 2) % 2 == 1 else polyorder + 3
    for _ in range(10000):
        c = signal.savgol_coeffs(win, polyorder)
        _, h = signal.freqz(c, worN=w)
        if abs(h[0]) <= 1.0 / math.sqrt(2.0):
            return int(win)
        win += 2
    raise ValueError(f"no Savitzky-Golay window reaches -3 dB at {cutoff_hz} Hz")  # pragma: no cover


def _filtfilt_odd(b: np.ndarray, a: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """``scipy.signal.filtfilt(b, a, x, axis=0, padtype="odd", padlen=padlen)`` of all channels of ``x`` (N, C) in
    one compiled pass (:func:`models.iir_kernels.filtfilt0`): the same odd extension, the same numbers."""
    if padlen < 1:
        return filtfilt0(b, a, x)
    ext = np.concatenate([2 * x[0:1] - x[padlen:0:-1], x, 2 * x[-1:] - x[-2:-(padlen + 2):-1]], axis=0)
    return filtfilt0(b, a, ext)[padlen:-padlen]


def _central_derivatives(y: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order central differences inside, second-order one-sided at the ends (needs N >= 4)."""
    if y.shape[0] < 4:
        raise ValueError(f"need at least 4 samples for the derivatives, got {y.shape[0]}")
    vel = np.empty_like(y)
    acc = np.empty_like(y)
    vel[1:-1] = (y[2:] - y[:-2]) / (2 * dt)
    vel[0] = (-3 * y[0] + 4 * y[1] - y[2]) / (2 * dt)
    vel[-1] = (3 * y[-1] - 4 * y[-2] + y[-3]) / (2 * dt)
    dt2 = dt * dt
    acc[1:-1] = (y[2:] - 2 * y[1:-1] + y[:-2]) / dt2
    acc[0] = (2 * y[0] - 5 * y[1] + 4 * y[2] - y[3]) / dt2
    acc[-1] = (2 * y[-1] - 5 * y[-2] + 4 * y[-3] - y[-4]) / dt2
    return vel, acc


_METHODS = ("butterworth", "savgol")


def smooth_derivatives(
    x: np.ndarray,
    sample_rate_hz: float,
    *,
    method: str = "butterworth",
    cutoff_hz: float = 6.0,
    order: int = 2,
    correct_two_pass_cutoff: bool = True,
    savgol_polyorder: int = 3,
    savgol_window: int | None = None,
    max_gap_s: float = 0.1,
    channel_names: tuple[str, ...] | None = None,
) -> SmoothedDerivatives:
    """Zero-lag smoothing and first/second derivatives of a whole trial ``x`` ((N,) or (N, C), uniform sampling).

    ``method="butterworth"``: ``filtfilt`` with odd padding, then central differences.  ``method="savgol"``:
    ``savgol_filter(deriv=0, 1, 2, mode="interp")``.  Gap and edge handling as in the module docstring.
    """
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(_METHODS)}")
    if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz!r}")
    x2, squeeze = _as_2d(x)
    n = x2.shape[0]
    if n < 4:
        raise ValueError(f"need at least 4 samples, got {n}")
    filled, mask = fill_gaps(x2, sample_rate_hz, max_gap_s=max_gap_s, channel_names=channel_names)
    dt = 1.0 / sample_rate_hz
    details: dict = {}
    if method == "butterworth":
        design_fc = cutoff_hz / two_pass_cutoff_correction(order) if correct_two_pass_cutoff else cutoff_hz
        params = LowPassParams(cutoff_hz=design_fc, sample_rate_hz=sample_rate_hz, order=order)
        b, a = butterworth_lowpass(params)
        padlen = min(n - 1, int(math.ceil(3.0 * sample_rate_hz / cutoff_hz)))
        pos = _filtfilt_odd(b, a, filled, padlen)
        vel, acc = _central_derivatives(pos, dt)
        details.update(design_cutoff_hz=design_fc, padlen=padlen, order=order)
    else:
        win = savgol_window if savgol_window is not None else savgol_window_for_cutoff(
            cutoff_hz, sample_rate_hz, savgol_polyorder
        )
        if win % 2 == 0 or win <= savgol_polyorder:
            raise ValueError(f"savgol_window must be odd and > polyorder ({savgol_polyorder}), got {win}")
        if win > n:
            raise ValueError(f"savgol window of {win} samples is longer than the signal ({n} samples)")
        kw = dict(window_length=win, polyorder=savgol_polyorder, delta=dt, axis=0, mode="interp")
        pos = signal.savgol_filter(filled, deriv=0, **kw)
        vel = signal.savgol_filter(filled, deriv=1, **kw)
        acc = signal.savgol_filter(filled, deriv=2, **kw)
        details.update(window=win, polyorder=savgol_polyorder)
    if squeeze:
        pos, vel, acc, mask = pos[:, 0], vel[:, 0], acc[:, 0], mask[:, 0]
    return SmoothedDerivatives(
        position=pos,
        velocity=vel,
        acceleration=acc,
        filled=mask,
        sample_rate_hz=float(sample_rate_hz),
        method=method,
        cutoff_hz=float(cutoff_hz),
        details=details,
    )
