"""Which trial column is which marker of a marker set: exact names first, then names normalised.

Pure computation (the standard library).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["match_marker_names"]


def _normalise_marker_name(name: str) -> str:
    return "".join("_" if ch in ".- " else ch for ch in name.strip()).lower()


def match_marker_names(set_names: Sequence[str], trial_names: Sequence[str]) -> dict[int, int]:
    """Marker-set index -> trial column index.  Exact names first; the rest match when equal after
    lower-casing and mapping ``.``, ``-`` and spaces to ``_`` (DM_markers.xml says ``R.Knee.Lateral``
    where the DM ``.trc`` files say ``R_Knee_Lateral``).  A normalised name that two trial columns share
    is ambiguous and raises ``ValueError``."""
    exact = {n: j for j, n in enumerate(trial_names)}
    out: dict[int, int] = {}
    for i, n in enumerate(set_names):
        if n in exact:
            out[i] = exact[n]
    taken = set(out.values())
    norm: dict[str, list[int]] = {}
    for j, n in enumerate(trial_names):
        if j not in taken:
            norm.setdefault(_normalise_marker_name(n), []).append(j)
    for i, n in enumerate(set_names):
        if i in out:
            continue
        js = norm.get(_normalise_marker_name(n), [])
        if len(js) > 1:
            raise ValueError(
                f"marker {n!r} matches several trial columns after normalisation: {[trial_names[j] for j in js]}"
            )
        if js:
            out[i] = js[0]
    return out
