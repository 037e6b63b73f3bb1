"""Range checks of numeric parameters: one rule and one message for every parameter dataclass of the project.

``check_ranges("GaitPhaseParams", self, {"min_period_s": (0.2, 5.0), ...})`` raises ``ValueError`` naming the
owner, the field, the value and the allowed range, e.g. ``GaitPhaseParams.min_period_s = -1: allowed
0.2 <= min_period_s <= 5.0``. A bool, a non-number, NaN or inf is refused like an out-of-range value.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["check_ranges"]


def check_ranges(owner: str, obj: Any, ranges: Mapping[str, tuple[float, float]]) -> None:
    """Each ``obj.<name>`` must be a finite number with ``lo <= value <= hi``."""
    for name, (lo, hi) in ranges.items():
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
            raise ValueError(f"{owner}.{name} = {v!r}: allowed {lo} <= {name} <= {hi}")
