"""Compiled IIR filtering of many channels at once: ``scipy.signal.lfilter`` / ``filtfilt`` along axis 0, and the
Butterworth designs cached by their parameters.

``scipy.signal.lfilter`` on an (N, C) array along axis 0 walks each channel with a stride of C samples; for the
ground reaction estimate (C = 348 body channels, N ~ 500 padded samples) that is ~9 ns a sample.  :func:`lfilter0`
runs the same direct form II transposed recursion (scipy's ``_linear_filter`` loop, in the same operation order:
``y = z0 + b0 x``, ``z_i = (z_{i+1} + x b_{i+1}) - y a_{i+1}``, ``z_last = x b_n - y a_n``) sample by sample over all
channels in numba, ~1 ns a sample, and :func:`filtfilt0` composes it as ``filtfilt(..., padtype=None)`` does
(initial states ``lfilter_zi * x[0]`` forward and ``lfilter_zi * y[-1]`` backward).  The results equal scipy's to
the last bit on the machines we tested (``tests/test_filters.py`` asserts 1e-12 relative against scipy channel by
channel).

:func:`butter_cached`: ``scipy.signal.butter`` of ``(order, cutoff_hz, rate_hz)`` designed once per process,
returned as read-only arrays (callers cannot corrupt the cache).

Shapes: time along axis 0, any trailing shape (flattened to channels).  Pure computation: numpy, scipy, numba.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit
from scipy import signal

__all__ = ["butter_cached", "filtfilt0", "lfilter0", "lfilter_zi_cached"]


@lru_cache(maxsize=256)
def butter_cached(order: int, cutoff_hz: float, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``(b, a)`` of ``scipy.signal.butter(order, cutoff_hz, "low", fs=rate_hz)`` (float64)."""
    b, a = signal.butter(int(order), float(cutoff_hz), btype="low", fs=float(rate_hz))
    b, a = np.asarray(b, dtype=float), np.asarray(a, dtype=float)
    b.setflags(write=False)
    a.setflags(write=False)
    return b, a


def lfilter_zi_cached(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Read-only ``scipy.signal.lfilter_zi(b, a)``, cached by the coefficients' values."""
    return _zi(tuple(float(v) for v in b), tuple(float(v) for v in a))


@lru_cache(maxsize=256)
def _zi(b: tuple[float, ...], a: tuple[float, ...]) -> np.ndarray:
    zi = np.asarray(signal.lfilter_zi(np.array(b), np.array(a)), dtype=float)
    zi.setflags(write=False)
    return zi


@njit(cache=True)
def _df2t(b: np.ndarray, a: np.ndarray, x: np.ndarray, z: np.ndarray, y: np.ndarray, reverse: bool) -> None:
    """DF2T recursion over the rows of ``x`` (N, C) into ``y`` (N, C) from state ``z`` (order, C) (updated);
    ``reverse``: rows N-1 .. 0 (filtfilt's backward pass without copies).  ``a[0]`` is 1.  Order 2 (one biquad,
    the designs used here) has its own loop over the channels, which LLVM vectorises."""
    n, c = x.shape
    nz = z.shape[0]
    if nz == 2:
        b0, b1, b2, a1, a2 = b[0], b[1], b[2], a[1], a[2]
        z0, z1 = z[0], z[1]
        for s in range(n):
            k = n - 1 - s if reverse else s
            xk, yk = x[k], y[k]
            for j in range(c):
                xn = xk[j]
                yn = z0[j] + b0 * xn
                yk[j] = yn
                z0[j] = z1[j] + xn * b1 - yn * a1
                z1[j] = xn * b2 - yn * a2
        return
    for s in range(n):
        k = n - 1 - s if reverse else s
        for j in range(c):
            xn = x[k, j]
            if nz == 0:
                y[k, j] = xn * b[0]
                continue
            yn = z[0, j] + b[0] * xn
            y[k, j] = yn
            for i in range(nz - 1):
                z[i, j] = z[i + 1, j] + xn * b[i + 1] - yn * a[i + 1]
            z[nz - 1, j] = xn * b[nz] - yn * a[nz]


def _check(b: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(b, dtype=float)
    a = np.asarray(a, dtype=float)
    if b.ndim != 1 or a.ndim != 1 or b.size != a.size or b.size < 1:
        raise ValueError(f"b and a must be 1-D of the same length, got {b.shape} and {a.shape}")
    if a[0] != 1.0:
        b, a = b / a[0], a / a[0]
    return np.ascontiguousarray(b), np.ascontiguousarray(a)


def lfilter0(b: np.ndarray, a: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.lfilter(b, a, x, axis=0, zi=zi)`` for ``x`` (N, ...) and ``zi`` (order, ...) (zeros when
    ``None``): ``(y, zf)``, shaped like ``x`` and ``zi``.  ``len(b) == len(a)`` (IIR designs)."""
    b, a = _check(b, a)
    x = np.asarray(x, dtype=float)
    x2 = np.ascontiguousarray(x.reshape(x.shape[0], -1))
    nz = b.size - 1
    z = np.zeros((nz, x2.shape[1])) if zi is None else np.array(np.broadcast_to(
        np.asarray(zi, float).reshape(nz, -1), (nz, x2.shape[1])))
    y = np.empty_like(x2)
    _df2t(b, a, x2, z, y, False)
    return y.reshape(x.shape), z.reshape((nz,) + x.shape[1:])


def filtfilt0(b: np.ndarray, a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``scipy.signal.filtfilt(b, a, x, axis=0, padtype=None)`` for ``x`` (N, ...): forward from the steady state
    of ``x[0]``, backward from the steady state of the forward output's last sample."""
    b, a = _check(b, a)
    x = np.asarray(x, dtype=float)
    x2 = np.ascontiguousarray(x.reshape(x.shape[0], -1))
    if x2.shape[0] == 0:
        return x.copy()
    zi = np.asarray(lfilter_zi_cached(b, a))[:, None]
    y = np.empty_like(x2)
    z = zi * x2[0][None, :]
    _df2t(b, a, x2, z, y, False)
    out = np.empty_like(x2)
    z = zi * y[-1][None, :]
    _df2t(b, a, y, z, out, True)
    return out.reshape(x.shape)
