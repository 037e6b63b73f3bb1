"""Peak resident memory per process, each measured from that process's own source, and their labels.

Why not ``getrusage``: on Linux a child started with ``spawn`` (``vfork`` + ``exec``) inherits the parent's
``ru_maxrss`` (the kernel carries ``maxrss`` over ``exec``), so ``RUSAGE_CHILDREN`` of a session reports the
*parent's* peak for the largest child, and the old summary showed the same number twice. The own peak of a
process is ``VmHWM`` in ``/proc/<pid>/status`` (the high-water mark of its own resident set; reset by ``exec``):
each process reads its own and hands it to the session (the torque process returns it with its result).

Units: MB = 2**20 bytes (``VmHWM`` is in kB = KiB).
"""
from __future__ import annotations

import resource
from collections.abc import Mapping
from pathlib import Path

#: summary.json key -> what the number is (shown in the report beside the figure)
LABELS: dict[str, str] = {
    "estimation_process": "estimation process (the session's own process: its VmHWM)",
    "torque_process": "torque process (its own VmHWM, reported by that process at exit)",
    "vision_process": "vision process (its own VmHWM, reported by that process at exit)",
    "plant_process": "emulated plant process (its own VmHWM)",
    "largest_child_process": ("largest child by getrusage(RUSAGE_CHILDREN).ru_maxrss (older runs: includes the "
                              "parent's peak inherited at spawn, not the child's own)"),
}


def vm_hwm_mb(status_text: str) -> float | None:
    """``VmHWM`` (MB) from the text of a ``/proc/<pid>/status`` file; None when the line is absent (a zombie or
    a kernel thread has none)."""
    for line in status_text.splitlines():
        if line.startswith("VmHWM:"):
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError(f"VmHWM line = {line!r}: expected 'VmHWM: <n> kB'")
            unit = parts[2] if len(parts) > 2 else "kB"
            if unit != "kB":
                raise ValueError(f"VmHWM unit = {unit!r}: expected kB")
            return int(parts[1]) / 1024.0
    return None


def own_peak_rss_mb(status_path: str | Path = "/proc/self/status") -> float:
    """This process's own peak resident memory (MB): ``VmHWM`` of *status_path*; where ``/proc`` is absent,
    ``getrusage(RUSAGE_SELF).ru_maxrss`` (kB on Linux)."""
    try:
        mb = vm_hwm_mb(Path(status_path).read_text())
    except OSError:
        mb = None
    if mb is None:
        mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return round(mb, 1)


def peak_memory(own_mb: float, children: Mapping[str, float | None]) -> dict[str, float | None]:
    """The ``peak_rss_mb`` record of summary.json: ``{"estimation_process": own_mb, <child>: its own MB}``; a child
    that did not report is kept as None (shown as "not reported"), never filled in from another source."""
    if not (own_mb == own_mb and own_mb > 0):
        raise ValueError(f"own_mb = {own_mb}: the estimation process's peak must be a positive number of MB")
    out: dict[str, float | None] = {"estimation_process": round(float(own_mb), 1)}
    for name, mb in children.items():
        if name == "estimation_process":
            raise ValueError(f"children: {name!r} is the session's own process, not a child")
        if mb is not None and not (mb == mb and mb > 0):
            raise ValueError(f"children[{name!r}] = {mb}: expected a positive number of MB or None")
        out[name] = None if mb is None else round(float(mb), 1)
    return out


def label(key: str) -> str:
    """What the figure under *key* is (see :data:`LABELS`); an unknown key is shown as its words."""
    return LABELS.get(key, key.replace("_", " "))


def memory_lines(peak: Mapping[str, object]) -> list[str]:
    """One text per process: ``"<label>: <MB> MB"`` (or ``not reported``), in the record's order."""
    lines = []
    for key, mb in peak.items():
        value = "not reported" if mb is None else f"{float(mb):.1f} MB"
        lines.append(f"{label(key)}: {value}")
    return lines
