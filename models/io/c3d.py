"""Raw ``.c3d`` lab captures through the optional package ``ezc3d`` -> :class:`C3DTrial` (markers and analogs).

Markers in metres (from ``POINT:UNITS``), lab frame as recorded (the GC5 ``.c3d`` files are z up); analog channels
keep their recorded values and units.  Pure computation: numpy, and ezc3d imported on demand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from models.io.marker_trial import MarkerTrial
from models.io.reader_support import OptionalDependencyError, close_matches_error, frozen, length_scale

__all__ = ["C3DTrial", "read_c3d"]


@dataclass(frozen=True, eq=False)
class C3DTrial:
    """A raw ``.c3d`` capture: markers (metres, lab frame as recorded) and analog channels as recorded."""

    markers: MarkerTrial
    analog_labels: tuple[str, ...]
    analog_units: tuple[str, ...]  # per channel, "" where the file declares none
    analog_rate_hz: float
    analogs: np.ndarray  # (N_analog, C), values as recorded (e.g. N, N.mm, V)
    force_plate_count: int
    force_plate_types: tuple[int, ...] = ()
    path: str = ""

    @property
    def analog_time_s(self) -> np.ndarray:
        t0 = float(self.markers.time_s[0]) if self.markers.n_frames else 0.0
        if self.analog_rate_hz <= 0:
            return np.zeros(self.analogs.shape[0])
        return t0 + np.arange(self.analogs.shape[0]) / self.analog_rate_hz

    def analog(self, label: str) -> np.ndarray:
        """One analog channel by label; KeyError lists close matches."""
        try:
            j = self.analog_labels.index(label)
        except ValueError:
            raise close_matches_error("analog channel", label, self.analog_labels, self.path) from None
        return self.analogs[:, j]


def _param(params: Mapping[str, Any], group: str, name: str, default: Any = None) -> Any:
    try:
        return params[group][name]["value"]
    except (KeyError, TypeError):
        return default


def read_c3d(path: str | os.PathLike[str], *, zeros_as_missing: bool = True) -> C3DTrial:
    """Read a ``.c3d`` capture with the optional package ``ezc3d``.

    Markers are converted to metres from ``POINT:UNITS`` (mm/cm/m, else ``ValueError``), samples that
    ezc3d flags invalid are NaN, and with ``zeros_as_missing`` exact (0, 0, 0) samples too (as in
    :func:`models.io.trc.read_trc`).  The lab frame is kept as recorded (often z up in a raw capture).  ``frame``
    is the 1-based c3d frame number and ``time_s = (frame - 1) / rate`` (time since capture start).
    Analog channels keep their recorded values (ezc3d applies the SCALE/OFFSET parameters) and units.

    Raises :class:`~models.io.reader_support.OptionalDependencyError` (an ``ImportError``) when ezc3d is not
    installed.
    """
    p = Path(path)
    where = str(p)
    try:
        import ezc3d  # type: ignore[import-not-found]
    except ImportError as exc:
        raise OptionalDependencyError(
            f"{where}: reading .c3d files needs the optional package 'ezc3d' "
            "(pip install ezc3d, or install this project's 'models' extra); .trc/.mot/.sto need nothing extra"
        ) from exc
    if not p.is_file():
        raise FileNotFoundError(where)

    c = ezc3d.c3d(where)
    markers = _markers(c, where, zeros_as_missing)
    return _with_analogs(c, markers, where)


def _point_labels(params: Mapping[str, Any], m: int, where: str) -> list[str]:
    """The first ``m`` of ``POINT:LABELS`` (continued in ``LABELS2``, ``LABELS3``, ...)."""
    labels = [str(s).strip() for s in (_param(params, "POINT", "LABELS", []) or [])]
    k = 2
    while len(labels) < m and _param(params, "POINT", f"LABELS{k}") is not None:
        labels += [str(s).strip() for s in _param(params, "POINT", f"LABELS{k}")]
        k += 1
    if len(labels) < m:
        raise ValueError(f"{where}: header key 'POINT:LABELS' names {len(labels)} points but the data has {m}")
    return labels[:m]


def _markers(c: Any, where: str, zeros_as_missing: bool) -> MarkerTrial:
    """The capture's points as a :class:`MarkerTrial` (metres, NaN where invalid or, optionally, exactly zero)."""
    params = c["parameters"]
    hdr = c["header"]
    units_v = _param(params, "POINT", "UNITS", None)
    if units_v is None or len(units_v) == 0:
        raise ValueError(f"{where}: header key 'POINT:UNITS' missing")
    units = str(units_v[0]).strip()
    scale = length_scale(units, where, "POINT:UNITS")

    points = np.asarray(c["data"]["points"], dtype=float)  # (4, M, N)
    m, n = points.shape[1], points.shape[2]
    labels = _point_labels(params, m, where)

    rate_v = _param(params, "POINT", "RATE", None)
    rate = float(rate_v[0]) if rate_v is not None and len(rate_v) else float(hdr["points"]["frame_rate"])
    first = int(hdr["points"]["first_frame"]) + 1

    pos = np.transpose(points[:3], (2, 1, 0)).copy()  # (N, M, 3)
    masked = 0
    if zeros_as_missing and m:
        zero = np.all(pos == 0.0, axis=2)
        masked = int(zero.sum())
        pos[zero] = np.nan
    pos *= scale
    frame = first + np.arange(n, dtype=np.int64)
    time_s = (frame - 1) / rate if rate > 0 else np.zeros(n)

    header = {"POINT:UNITS": units, "POINT:RATE": f"{rate:g}", "first_frame": str(first)}
    return MarkerTrial(
        time_s=frozen(time_s.astype(float)),
        frame=frozen(frame),
        marker_names=tuple(labels),
        positions_m=frozen(pos),
        rate_hz=rate,
        source_units=units,
        path=where,
        header=header,
        zero_samples_masked=masked,
    )


def _with_analogs(c: Any, markers: MarkerTrial, where: str) -> C3DTrial:
    """The :class:`C3DTrial`: ``markers`` with the analog channels (labels, units, rate) and force-plate count."""
    params = c["parameters"]
    hdr = c["header"]
    analogs = np.asarray(c["data"]["analogs"], dtype=float)  # (1, C, Na)
    n_ch = analogs.shape[1] if analogs.ndim == 3 else 0
    analog_2d = analogs[0].T.copy() if n_ch else np.zeros((0, 0))
    a_labels = [str(s).strip() for s in (_param(params, "ANALOG", "LABELS", []) or [])][:n_ch]
    a_labels += [f"analog_{i + 1}" for i in range(len(a_labels), n_ch)]
    a_units = [str(s).strip() for s in (_param(params, "ANALOG", "UNITS", []) or [])][:n_ch]
    a_units += [""] * (n_ch - len(a_units))
    a_rate_v = _param(params, "ANALOG", "RATE", None)
    a_rate = float(a_rate_v[0]) if a_rate_v is not None and len(a_rate_v) else float(hdr["analogs"]["frame_rate"])
    used = _param(params, "FORCE_PLATFORM", "USED", None)
    fp_count = int(used[0]) if used is not None and len(used) else 0
    types = _param(params, "FORCE_PLATFORM", "TYPE", None)
    fp_types = tuple(int(t) for t in types[:fp_count]) if types is not None else ()

    return C3DTrial(
        markers=markers,
        analog_labels=tuple(a_labels),
        analog_units=tuple(a_units),
        analog_rate_hz=a_rate,
        analogs=frozen(analog_2d),
        force_plate_count=fp_count,
        force_plate_types=fp_types,
        path=where,
    )
