"""Gait retraining feedback: each stride's peak knee adduction moment (KAM) against the walker's own baseline.

The seed's use: flag elevated peak KAM and show the walker, stride by stride, whether a modification (e.g.
lateral trunk sway) lowers it. Streaming, one sample at a time from the 60 Hz pipeline:

* **Stride segmentation**, two methods (choose with ``segmentation``):

  - ``"heel_strike"`` (preferred when a vertical GRF of the same leg is available): a heel strike is the vertical
    force rising through ``fz_on_n`` after having been below ``fz_off_n`` (hysteresis); a stride runs from one heel
    strike to the next and is reported at the second one.
  - ``"kam"`` (the KAM waveform itself, when no GRF is trusted): stance is where KAM is loaded, i.e. from KAM rising
    through ``kam_on`` until it falls below ``kam_off`` (%BW*ht, hysteresis); the stride is reported when its stance
    ends, so the walker sees it before the next step of that leg. Thresholds are absolute, well below typical
    peaks (2-4 %BW*ht) and above swing-phase noise.

  Stances shorter than ``min_stance_s`` (noise) are ignored; strides longer than ``max_stride_s`` (the walker
  stopped) are discarded. Non-finite samples are skipped.
* **Peak**: the maximum KAM within the stride (heel strike mode) or stance (KAM mode), in %BW*ht, with its time.
* **Baseline**: a stored value (``baseline_kam``) or the median of the first ``baseline_strides`` peaks.
* **Feedback** per stride after the baseline: ``change_pct = 100 * (peak - baseline) / baseline`` and a traffic
  light: green when ``change_pct <= green_below_pct`` (load reduced to target), red when
  ``change_pct >= red_above_pct`` (load increased), amber between.

Each stride's feedback is returned and, if a live view is given, published on ``/exo/live/gait_retraining``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

GAIT_TOPIC = "/exo/live/gait_retraining"
LEVELS = {"baseline": -1, "green": 0, "amber": 1, "red": 2}


class Publisher(Protocol):
    def publish(self, topic: str, t_ns: int, values: dict[str, Any]) -> bool: ...


@dataclass(frozen=True)
class StrideFeedback:
    """One stride's result. Times ns (the caller's clock); KAM %BW*ht; change %."""

    stride: int
    t_start_ns: int
    t_end_ns: int
    t_peak_ns: int
    peak_kam: float
    baseline_kam: float | None
    change_pct: float | None
    category: str

    @property
    def level(self) -> int:
        return LEVELS[self.category]

    def as_values(self) -> dict[str, Any]:
        """Fields of the live-view message."""
        d = asdict(self)
        d["level"] = self.level
        d["stride_s"] = (self.t_end_ns - self.t_start_ns) * 1e-9
        return d


class GaitRetraining:
    """Streaming per-stride peak-KAM feedback for one leg (see the module docstring for the method)."""

    def __init__(self, *, segmentation: str = "kam", baseline_strides: int = 5, baseline_kam: float | None = None,
                 green_below_pct: float = -10.0, red_above_pct: float = 5.0, kam_on: float = 0.5,
                 kam_off: float = 0.25, fz_on_n: float = 50.0, fz_off_n: float = 20.0, min_stance_s: float = 0.2,
                 max_stride_s: float = 3.0, live: Publisher | None = None, topic: str = GAIT_TOPIC) -> None:
        if segmentation not in ("kam", "heel_strike"):
            raise ValueError(f"segmentation = {segmentation!r}: must be 'kam' or 'heel_strike'")
        if baseline_kam is None and (not isinstance(baseline_strides, int) or baseline_strides < 1):
            raise ValueError(f"baseline_strides = {baseline_strides!r}: must be a positive integer")
        if baseline_kam is not None and not (math.isfinite(baseline_kam) and baseline_kam > 0):
            raise ValueError(f"baseline_kam = {baseline_kam!r}: must be a positive peak KAM in %BW*ht")
        if not green_below_pct < red_above_pct:
            raise ValueError(f"green_below_pct = {green_below_pct!r} must be below red_above_pct = {red_above_pct!r}")
        if not kam_off < kam_on:
            raise ValueError(f"kam_off = {kam_off!r} must be below kam_on = {kam_on!r} (%BW*ht)")
        if not fz_off_n < fz_on_n:
            raise ValueError(f"fz_off_n = {fz_off_n!r} must be below fz_on_n = {fz_on_n!r} (N)")
        if not 0 < min_stance_s < max_stride_s:
            raise ValueError(f"min_stance_s = {min_stance_s!r}, max_stride_s = {max_stride_s!r}: need 0 < min < max (s)")
        self.segmentation = segmentation
        self.baseline_strides = baseline_strides
        self.green_below_pct = float(green_below_pct)
        self.red_above_pct = float(red_above_pct)
        self.kam_on, self.kam_off = float(kam_on), float(kam_off)
        self.fz_on_n, self.fz_off_n = float(fz_on_n), float(fz_off_n)
        self.min_stance_ns = int(min_stance_s * 1e9)
        self.max_stride_ns = int(max_stride_s * 1e9)
        self.live = live
        self.topic = topic
        self.baseline_kam: float | None = float(baseline_kam) if baseline_kam is not None else None
        self._baseline_peaks: list[float] = []
        self.strides: list[StrideFeedback] = []
        self.discarded = 0
        # segmentation state
        self._in_stride = False
        self._armed = True  # heel strike mode: force has been below fz_off_n since the last strike
        self._t_start = 0
        self._peak = -math.inf
        self._t_peak = 0

    def reset_baseline(self, baseline_kam: float | None = None) -> None:
        """Start a new baseline (the next strides, or the given stored value)."""
        self.baseline_kam = baseline_kam
        self._baseline_peaks = []

    def _open(self, t_ns: int) -> None:
        self._in_stride = True
        self._t_start = t_ns
        self._peak = -math.inf
        self._t_peak = t_ns

    def _close(self, t_ns: int, min_ns: int) -> StrideFeedback | None:
        self._in_stride = False
        dur = t_ns - self._t_start
        if dur < min_ns or dur > self.max_stride_ns or not math.isfinite(self._peak):
            self.discarded += 1
            return None
        return self._feedback(t_ns)

    def _feedback(self, t_end: int) -> StrideFeedback:
        peak = float(self._peak)
        if self.baseline_kam is None:
            self._baseline_peaks.append(peak)
            if len(self._baseline_peaks) >= self.baseline_strides:
                self.baseline_kam = float(np.median(self._baseline_peaks))
            fb = StrideFeedback(len(self.strides) + 1, self._t_start, t_end, self._t_peak, peak, None, None, "baseline")
        else:
            change = 100.0 * (peak - self.baseline_kam) / self.baseline_kam
            cat = "green" if change <= self.green_below_pct else "red" if change >= self.red_above_pct else "amber"
            fb = StrideFeedback(len(self.strides) + 1, self._t_start, t_end, self._t_peak, peak, self.baseline_kam,
                                change, cat)
        self.strides.append(fb)
        if self.live is not None:
            self.live.publish(self.topic, t_end, fb.as_values())
        return fb

    def update(self, t_ns: int, kam: float, fz_n: float | None = None) -> StrideFeedback | None:
        """Feed one sample: time (ns), KAM (%BW*ht) and, for heel strike segmentation, the vertical GRF of the same
        leg (N). Returns the feedback of a stride completed by this sample, else None."""
        if not math.isfinite(kam):
            return None
        out = None
        if self.segmentation == "kam":
            if not self._in_stride:
                if kam > self.kam_on:
                    self._open(t_ns)
            elif kam < self.kam_off:
                out = self._close(t_ns, self.min_stance_ns)
        else:
            if fz_n is None or not math.isfinite(fz_n):
                return None
            if fz_n < self.fz_off_n:
                self._armed = True
            elif fz_n > self.fz_on_n and self._armed:
                self._armed = False
                if self._in_stride:
                    out = self._close(t_ns, self.min_stance_ns)
                self._open(t_ns)
        if self._in_stride and kam > self._peak:
            self._peak = float(kam)
            self._t_peak = t_ns
        return out
