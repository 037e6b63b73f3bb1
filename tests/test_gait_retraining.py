"""Per-stride peak KAM feedback on synthetic strides whose peaks are known exactly."""
from __future__ import annotations

import math

import numpy as np
import pytest

from runtime.report.gait_retraining import GAIT_TOPIC, GaitRetraining

RATE_HZ = 60.0
STRIDE_N = 72   # samples per stride (1.2 s at 60 Hz)
STANCE_N = 43   # stance samples (60 %)


def _shape() -> np.ndarray:
    """Double-humped stance KAM shape (first hump higher, mid-stance trough about 60 %), max 1; zero in swing."""
    i = np.arange(STRIDE_N, dtype=float)
    w = (np.exp(-((i - 10) / 6.0) ** 2) + 0.8 * np.exp(-((i - 32) / 6.0) ** 2)
         + 0.45 * np.sin(np.pi * np.clip(i, 0, STANCE_N) / STANCE_N))
    w = np.where(i < STANCE_N, w, 0.0)
    return w / w.max()


SHAPE = _shape()
PEAK_I = int(np.argmax(SHAPE))  # the sample holding each stride's peak


def stride_kam(peak: float) -> np.ndarray:
    """One stride of KAM (%BW*ht) whose maximum is exactly ``peak``, at sample PEAK_I."""
    return peak * SHAPE


def stride_fz(mass_kg: float = 70.0) -> np.ndarray:
    i = np.arange(STRIDE_N, dtype=float)
    return np.where(i < STANCE_N, mass_kg * 9.81 * (0.2 + np.sin(np.pi * (i + 0.5) / STANCE_N)), 0.0)


def feed(g: GaitRetraining, peaks: list[float], noise: float = 0.0, seed: int = 0, with_fz: bool = False,
         start_swing: int = 10):
    rng = np.random.default_rng(seed)
    kam = np.concatenate([np.zeros(start_swing)] + [stride_kam(p) for p in peaks] + [np.zeros(STRIDE_N)])
    fz = np.concatenate([np.zeros(start_swing)] + [stride_fz() for _ in peaks] + [stride_fz()])
    kam = kam + noise * rng.standard_normal(kam.size)
    out = []
    for k, (a, f) in enumerate(zip(kam, fz[: kam.size])):
        fb = g.update(int(round(k / RATE_HZ * 1e9)), float(a), float(f) if with_fz else None)
        if fb is not None:
            out.append(fb)
    return out


class Recorder:
    def __init__(self) -> None:
        self.msgs = []

    def publish(self, topic, t_ns, values) -> bool:
        self.msgs.append((topic, t_ns, values))
        return True


BASE = [3.0, 3.1, 2.9, 3.0, 3.05]   # median 3.0
TRIAL = [2.4, 2.9, 3.3, 2.69, 3.16]  # -20 %, -3.3 %, +10 %, -10.3 %, +5.3 %


@pytest.mark.parametrize("with_fz", [False, True], ids=["kam-waveform", "heel-strike"])
def test_peaks_baseline_and_traffic_light(with_fz):
    rec = Recorder()
    g = GaitRetraining(segmentation="heel_strike" if with_fz else "kam", baseline_strides=5, live=rec)
    fbs = feed(g, BASE + TRIAL, with_fz=with_fz)
    assert len(fbs) == len(BASE) + len(TRIAL)
    assert [f.stride for f in fbs] == list(range(1, 11))
    for f, p in zip(fbs, BASE + TRIAL):
        assert f.peak_kam == pytest.approx(p, rel=1e-9)
    assert all(f.category == "baseline" and f.change_pct is None for f in fbs[:5])
    assert g.baseline_kam == pytest.approx(3.0)
    got = fbs[5:]
    for f, p in zip(got, TRIAL):
        assert f.baseline_kam == pytest.approx(3.0)
        assert f.change_pct == pytest.approx(100 * (p - 3.0) / 3.0, rel=1e-9)
    assert [f.category for f in got] == ["green", "amber", "red", "green", "red"]
    assert [f.level for f in got] == [0, 1, 2, 0, 2]
    # the peak is the first hump, at sample PEAK_I of each stride
    for n, f in enumerate(fbs):
        assert f.t_peak_ns == int(round((10 + n * STRIDE_N + PEAK_I) / RATE_HZ * 1e9))
    assert len(rec.msgs) == 10 and all(m[0] == GAIT_TOPIC for m in rec.msgs)
    last = rec.msgs[-1][2]
    assert last["category"] == "red" and last["peak_kam"] == pytest.approx(3.16) and last["level"] == 2
    # heel strike to heel strike is the whole stride; in KAM mode the loaded part of stance
    assert last["stride_s"] == pytest.approx(STRIDE_N / RATE_HZ if with_fz else STANCE_N / RATE_HZ, abs=0.1)


def test_stored_baseline_and_noise_robustness():
    g = GaitRetraining(baseline_kam=2.5)
    fbs = feed(g, [2.5, 2.0, 3.0], noise=0.05, seed=3)
    assert len(fbs) == 3 and g.discarded == 0
    assert [f.category for f in fbs] == ["amber", "green", "red"]
    for f, p in zip(fbs, [2.5, 2.0, 3.0]):
        assert abs(f.peak_kam - p) < 0.2  # noise of 0.05 (sd) on the samples


def test_short_blips_and_long_pauses_are_not_strides():
    g = GaitRetraining(baseline_kam=3.0)
    t = 0
    for k in range(5):  # a 3-sample blip above the threshold: shorter than min_stance_s
        g.update(t + k * 16_666_667, 1.0 if k < 3 else 0.0)
    assert g.strides == [] and g.discarded == 1
    h = GaitRetraining(segmentation="heel_strike", baseline_kam=3.0, max_stride_s=3.0)
    h.update(0, 2.0, 700.0)
    h.update(int(0.5e9), 0.0, 0.0)
    assert h.update(int(5e9), 2.0, 700.0) is None  # 5 s since the last heel strike: the walker stopped
    assert h.discarded == 1
    assert h.update(int(5.3e9), math.nan, 700.0) is None  # non-finite samples are skipped


def test_reset_baseline():
    g = GaitRetraining(baseline_strides=2)
    feed(g, [3.0, 3.0])
    assert g.baseline_kam == pytest.approx(3.0)
    g.reset_baseline()
    fbs = feed(g, [2.0, 2.2, 2.0])
    assert [f.category for f in fbs] == ["baseline", "baseline", "amber"]
    assert g.baseline_kam == pytest.approx(2.1)


@pytest.mark.parametrize("kwargs, field", [
    ({"segmentation": "peaks"}, "segmentation"),
    ({"baseline_strides": 0}, "baseline_strides"),
    ({"baseline_kam": -1.0}, "baseline_kam"),
    ({"green_below_pct": 5.0, "red_above_pct": 5.0}, "green_below_pct"),
    ({"kam_on": 0.2, "kam_off": 0.3}, "kam_off"),
    ({"fz_on_n": 10.0, "fz_off_n": 20.0}, "fz_off_n"),
    ({"min_stance_s": 4.0}, "min_stance_s"),
])
def test_bad_parameters_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        GaitRetraining(**kwargs)
