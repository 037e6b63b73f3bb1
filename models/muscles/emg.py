"""Surface EMG from the Grand Challenge ``.c3d`` files: envelopes, on/off timing, and agreement with model activations.

Processing (per channel, SENIAM-style, all filters zero-lag ``filtfilt`` so timing is not shifted):

1. **band-pass** 20-450 Hz, 4th-order Butterworth (removes movement artefact below 20 Hz and noise above the
   surface-EMG band; the PS analog rate is 1200 Hz, Nyquist 600 Hz);
2. **full-wave rectification**;
3. **low-pass** 6 Hz, 4th-order Butterworth: the linear envelope (6 Hz is the usual gait choice, e.g. Winter 2009;
   the same cut-off as the kinematics in :mod:`models.trial_analysis`);
4. **normalisation** to the envelope's peak within the record (no MVC trials are in the shared data, so amplitudes
   are relative, 0..1; on/off timing does not depend on the scale);
5. **on/off**: ``on`` where the envelope, rescaled to ``(e - min) / (max - min)`` over the analysed window, is at or
   above ``threshold`` (default 0.25, i.e. 25 % of the window's range), with bursts shorter than ``min_on_pct``
   (default 3 % of the window) removed.

Timing agreement of a model activation with an EMG envelope (both resampled to 101 points over the same window,
0 % = first frame, 100 % = last frame of the trial): the **percentage of the window where on/off agree** (both
thresholded the same way), and the **cross-correlation lag** (Pearson correlation of the curves shifted circularly,
the window being one gait cycle, within +-``max_lag_pct`` = 20 % of the cycle; positive lag = the activation comes
*later* than the EMG) in % of the window and in ms, with the correlation at that lag.  Note that EMG precedes
force by the electromechanical delay (~50-100 ms), which a static optimisation ignores; a positive lag of that
size is expected, not an error.

EMG labels in the PS files (left leg, the instrumented side) -> MyoLeg muscles (side-less names; several MyoLeg
muscles: their mean activation): :data:`EMG_TO_MYOLEG`. Channels without usable signal (band-passed RMS below 5 % of
the median channel's, or an envelope that never drops below 60 % of its peak in the window: PS ss1's ``gracilis``
and ``gmed``) are flagged and left out of the agreement figures.

This module is pure computation (numpy, scipy; ``ezc3d`` to read the files).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["EMG_LABELS", "EMG_TO_MYOLEG", "EMGRecording", "read_c3d_emg", "trc_start_offset_s", "emg_envelope",
           "on_off", "timing_agreement", "xcorr_lag", "resample_window", "model_activation_for",
           "compare_timing", "flat_channels", "emg_window_101", "compare_activations_with_emg"]

#: the 16 EMG channels of the PS .c3d files, in file order (ANALOG:LABELS 18..33)
EMG_LABELS = ("gracilis", "semimem", "bifeml", "vasmed", "vaslat", "rf", "medgas", "latgas", "tfl", "tibant",
              "peronl", "soleus", "addmag", "gmax", "gmed", "sartorius")

#: EMG label -> MyoLeg muscles (side-less) whose mean activation is compared with it
EMG_TO_MYOLEG: Mapping[str, tuple[str, ...]] = {
    "gracilis": ("grac",), "semimem": ("semimem",), "bifeml": ("bflh",), "vasmed": ("vasmed",),
    "vaslat": ("vaslat",), "rf": ("recfem",), "medgas": ("gasmed",), "latgas": ("gaslat",), "tfl": ("tfl",),
    "tibant": ("tibant",), "peronl": ("perlong",), "soleus": ("soleus",),
    "addmag": ("addmagDist", "addmagIsch", "addmagMid", "addmagProx"), "gmax": ("glmax1", "glmax2", "glmax3"),
    "gmed": ("glmed1", "glmed2", "glmed3"), "sartorius": ("sart",),
}

BAND_HZ = (20.0, 450.0)
LOWPASS_HZ = 6.0
THRESHOLD = 0.25
MIN_ON_PCT = 3.0
UNMODULATED_RATIO = 0.6


@dataclass(frozen=True)
class EMGRecording:
    """Raw EMG: ``volts`` (n, channels) at ``rate_hz``; ``time_s`` (n,) from the c3d's first point frame."""

    time_s: np.ndarray
    rate_hz: float
    names: tuple[str, ...]
    volts: np.ndarray
    first_point_frame: int
    point_rate_hz: float

    def channel(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(f"EMG channel {name!r} not in {list(self.names)}")
        return self.volts[:, self.names.index(name)]


def read_c3d_emg(path: str | Path, labels: Sequence[str] = EMG_LABELS) -> EMGRecording:
    """The named analog channels of a ``.c3d`` (ezc3d), in volts, on the analog clock."""
    import ezc3d

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"c3d path = {str(path)!r}: no such file")
    c = ezc3d.c3d(str(path))
    p = c["parameters"]
    all_labels = [str(x).strip() for x in p["ANALOG"]["LABELS"]["value"]]
    missing = [x for x in labels if x not in all_labels]
    if missing:
        raise KeyError(f"{path.name}: no analog channel(s) {missing}; available: {all_labels}")
    rate = float(p["ANALOG"]["RATE"]["value"][0])
    a = np.asarray(c["data"]["analogs"])[0]            # (channels, samples)
    idx = [all_labels.index(x) for x in labels]
    v = a[idx].T.astype(float)
    first = int(c["header"]["points"]["first_frame"])
    prate = float(p["POINT"]["RATE"]["value"][0])
    return EMGRecording(np.arange(v.shape[0]) / rate, rate, tuple(labels), v, first, prate)


def trc_start_offset_s(trc_path: str | Path, rec: EMGRecording) -> float:
    """Time (s) of the ``.trc``'s first frame on the EMG clock: ``(OrigDataStartFrame - c3d first frame) / rate``
    (Grand Challenge .trc files were cut from the c3d capture; their header keeps the original start frame)."""
    with open(trc_path) as f:
        lines = [next(f) for _ in range(3)]
    keys, vals = lines[1].split("\t"), lines[2].split("\t")
    head = {k.strip(): v.strip() for k, v in zip(keys, vals)}
    if "OrigDataStartFrame" not in head:
        raise ValueError(f"{trc_path}: header has no OrigDataStartFrame (keys {list(head)})")
    # the trc header counts c3d frames from 1; ezc3d's header first_frame counts from 0 (checked on PS against the
    # force plates: the .mot plate-1 vertical force matches the c3d's Fz1 at this offset, tests/test_emg.py)
    return (float(head["OrigDataStartFrame"]) - (rec.first_point_frame + 1)) / rec.point_rate_hz


def _butter(order: int, cut, rate: float, btype: str):
    from scipy.signal import butter

    return butter(order, np.asarray(cut) / (rate / 2.0), btype=btype, output="sos")


def emg_envelope(volts: np.ndarray, rate_hz: float, band_hz: tuple[float, float] = BAND_HZ,
                 lowpass_hz: float = LOWPASS_HZ) -> np.ndarray:
    """Linear envelope (same shape as ``volts``, (n,) or (n, ch)): band-pass, rectify, low-pass, each zero-lag."""
    from scipy.signal import sosfiltfilt

    x = np.asarray(volts, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("volts: contains NaN or inf")
    if not (0 < band_hz[0] < band_hz[1] < rate_hz / 2):
        raise ValueError(f"band_hz = {band_hz}: must satisfy 0 < low < high < rate/2 = {rate_hz / 2:g} Hz")
    if not (0 < lowpass_hz < rate_hz / 2):
        raise ValueError(f"lowpass_hz = {lowpass_hz!r}: must be in (0, {rate_hz / 2:g}) Hz")
    bp = sosfiltfilt(_butter(4, band_hz, rate_hz, "bandpass"), x, axis=0)
    env = sosfiltfilt(_butter(4, lowpass_hz, rate_hz, "lowpass"), np.abs(bp), axis=0)
    return np.maximum(env, 0.0)


def flat_channels(volts: np.ndarray, rate_hz: float, names: Sequence[str], ratio: float = 0.05) -> list[str]:
    """Channels whose band-passed RMS is below ``ratio`` x the median channel's (no usable signal)."""
    from scipy.signal import sosfiltfilt

    bp = sosfiltfilt(_butter(4, BAND_HZ, rate_hz, "bandpass"), np.asarray(volts, dtype=float), axis=0)
    rms = np.sqrt(np.mean(bp ** 2, axis=0))
    med = float(np.median(rms))
    return [n for n, r in zip(names, rms) if r < ratio * med]


def resample_window(t: np.ndarray, x: np.ndarray, t0: float, t1: float, n: int = 101) -> np.ndarray:
    """``x`` (len(t), ...) linearly interpolated to ``n`` points from ``t0`` (0 %) to ``t1`` (100 %)."""
    if not t1 > t0:
        raise ValueError(f"window t0 = {t0!r} s, t1 = {t1!r} s: need t1 > t0")
    if t0 < t[0] - 1e-9 or t1 > t[-1] + 1e-9:
        raise ValueError(f"window {t0:.4f}-{t1:.4f} s outside the signal's {t[0]:.4f}-{t[-1]:.4f} s")
    g = np.linspace(t0, t1, n)
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        return np.interp(g, t, x)
    return np.column_stack([np.interp(g, t, x[:, j]) for j in range(x.shape[1])])


def on_off(x: np.ndarray, threshold: float = THRESHOLD, min_on_pct: float = MIN_ON_PCT) -> np.ndarray:
    """Boolean on/off of a curve over its window: ``(x - min)/(max - min) >= threshold``, bursts shorter than
    ``min_on_pct`` % of the window removed.  A constant curve is all off."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold = {threshold!r}: allowed (0, 1)")
    x = np.asarray(x, dtype=float)
    lo, hi = float(np.min(x)), float(np.max(x))
    if not hi > lo:
        return np.zeros(x.size, dtype=bool)
    on = (x - lo) / (hi - lo) >= threshold
    min_len = int(round(min_on_pct / 100.0 * x.size))
    if min_len > 1:
        edges = np.flatnonzero(np.diff(np.r_[0, on.astype(int), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a < min_len:
                on[a:b] = False
    return on


def timing_agreement(a: np.ndarray, b: np.ndarray, threshold: float = THRESHOLD) -> float:
    """Percentage of samples where the on/off states of ``a`` and ``b`` agree (same length)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"timing_agreement: shapes differ, {a.shape} vs {b.shape}")
    return float(100.0 * np.mean(on_off(a, threshold) == on_off(b, threshold)))


def xcorr_lag(reference: np.ndarray, x: np.ndarray, max_lag: int, *, circular: bool = True) -> tuple[int, float]:
    """(lag, r): the shift (samples) maximising the Pearson correlation of ``x[k + lag]`` with ``reference[k]``,
    |lag| <= max_lag.  Positive lag: ``x`` comes later than ``reference``.

    ``circular=True`` (default; the window is one gait cycle, so the curves are periodic): the shift wraps around
    and the last sample, a repeat of the first (0 % and 100 % of the cycle), is dropped; every lag then correlates
    the same number of samples.  ``circular=False``: correlation over the overlap only."""
    r0, x0 = np.asarray(reference, dtype=float), np.asarray(x, dtype=float)
    n = r0.size
    if x0.size != n:
        raise ValueError(f"xcorr_lag: lengths differ, {n} vs {x0.size}")
    if not 0 <= max_lag < n - 2:
        raise ValueError(f"max_lag = {max_lag!r}: allowed 0..{n - 3}")
    if circular:
        r0, x0 = r0[:-1], x0[:-1]
        n -= 1
    best = (0, -np.inf)
    for lag in range(-max_lag, max_lag + 1):
        if circular:
            a, b = r0, np.roll(x0, -lag)
        elif lag >= 0:
            a, b = r0[:n - lag], x0[lag:]
        else:
            a, b = r0[-lag:], x0[:n + lag]
        if a.std() == 0 or b.std() == 0:
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        if r > best[1]:
            best = (lag, r)
    return best[0], float(best[1]) if np.isfinite(best[1]) else float("nan")


def model_activation_for(label: str, activation: np.ndarray, muscle_names: Sequence[str], side: str) -> np.ndarray:
    """Mean activation (N,) of the MyoLeg muscles mapped to EMG ``label`` on ``side`` ('left'/'right')."""
    if label not in EMG_TO_MYOLEG:
        raise KeyError(f"EMG label {label!r}: no mapping; known {list(EMG_TO_MYOLEG)}")
    s = {"left": "_l", "right": "_r"}.get(side)
    if s is None:
        raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
    names = list(muscle_names)
    idx = [names.index(m + s) for m in EMG_TO_MYOLEG[label] if m + s in names]
    if not idx:
        raise KeyError(f"none of {[m + s for m in EMG_TO_MYOLEG[label]]} among the model's muscles")
    return np.asarray(activation, dtype=float)[:, idx].mean(axis=1)


def compare_timing(emg_101: Mapping[str, np.ndarray], act_101: Mapping[str, np.ndarray], window_s: float,
                   threshold: float = THRESHOLD, max_lag_pct: float = 20.0) -> dict[str, dict[str, float]]:
    """Per EMG label present in both: on/off agreement (% of window), cross-correlation lag (% and ms; + =
    activation later; ``abs_lag_ms`` its magnitude), peak correlation, and on-fraction of each (%).  Inputs:
    101-point curves."""
    out = {}
    for name, e in emg_101.items():
        if name not in act_101:
            continue
        a = act_101[name]
        n = len(e)
        lag, r = xcorr_lag(e, a, int(round(max_lag_pct / 100.0 * (n - 1))))
        pct = 100.0 * lag / (n - 1)
        out[name] = {"agreement_pct": timing_agreement(e, a, threshold), "lag_pct": pct,
                     "lag_ms": pct / 100.0 * window_s * 1e3, "abs_lag_ms": abs(pct) / 100.0 * window_s * 1e3,
                     "xcorr_r": r,
                     "emg_on_pct": float(100 * on_off(e, threshold).mean()),
                     "act_on_pct": float(100 * on_off(a, threshold).mean())}
    return out


def emg_window_101(c3d_path: str | Path, trc_path: str | Path, duration_s: float,
                   labels: Sequence[str] = EMG_LABELS) -> tuple[dict[str, np.ndarray], list[str]]:
    """Normalised EMG envelopes (peak of the record = 1) of ``labels`` resampled to 101 points over the trial window
    (the ``.trc``'s first frame + ``duration_s``), and the labels flagged as without usable signal: flat
    (:func:`flat_channels`) or unmodulated (window minimum >= ``UNMODULATED_RATIO`` x window maximum: a muscle
    active in walking modulates far more; on PS ss1 gracilis and gmed are flagged)."""
    rec = read_c3d_emg(c3d_path, labels)
    t0 = trc_start_offset_s(trc_path, rec)
    env = emg_envelope(rec.volts, rec.rate_hz)
    peak = env.max(axis=0)
    env = env / np.where(peak > 0, peak, 1.0)
    flat = flat_channels(rec.volts, rec.rate_hz, rec.names)
    w = resample_window(rec.time_s, env, t0, t0 + duration_s)
    top = w.max(axis=0)
    for j, n in enumerate(rec.names):
        if n not in flat and top[j] > 0 and w[:, j].min() >= UNMODULATED_RATIO * top[j]:
            flat.append(n)
    return {n: w[:, j] for j, n in enumerate(rec.names)}, flat


def compare_activations_with_emg(emg_101: Mapping[str, np.ndarray], flat: Sequence[str], time_s: np.ndarray,
                                 activations: Mapping[str, np.ndarray], muscle_names: Sequence[str], side: str,
                                 threshold: float = THRESHOLD) -> dict[str, dict[str, dict[str, float]]]:
    """For each activation set (e.g. ``{"so": A, "synergy": A_syn}``, (N, n_muscles) on ``time_s``): per EMG label
    (flat channels left out) the :func:`compare_timing` figures, plus ``"mean"`` over the labels."""
    window = float(time_s[-1] - time_s[0])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, A in activations.items():
        act101 = {}
        for label in emg_101:
            if label in flat:
                continue
            a = model_activation_for(label, A, muscle_names, side)
            act101[label] = resample_window(time_s, a, time_s[0], time_s[-1], len(emg_101[label]))
        rows = compare_timing({k: v for k, v in emg_101.items() if k not in flat}, act101, window, threshold)
        rows["mean"] = {m: float(np.nanmean([r[m] for r in rows.values()])) for m in next(iter(rows.values()))}
        out[key] = rows
    return out
