"""Where the medial and lateral tibiofemoral contact points sit, from the subject's own knee markers.

The two-point split of :mod:`models.muscles.knee_contact` (Winby et al. 2009 J Biomech 42:2294) puts the medial
and lateral contact points ``d_m`` medial and ``d_l`` lateral of the point the contact moment is taken about, the
tibia body origin (MyoLeg's knee centre).  Placed symmetrically there (``d_m = d_l``), the split assumes that the
model's knee centre is the middle of the two compartments.  On the Grand Challenge subject PS it is not: the
femoral epicondyle markers of the subject model (``GC5.osim``'s ``LKneeMedial`` / ``LKneeLateral``, placed on the
static trial) have their midpoint 6.8 mm medial of MyoLeg's scaled knee centre, in the tibia frame at the neutral
pose, so the contact moment about the model's centre carries ``0.0068 m * F_axial`` that the compartments do not.
The same two-point model through OpenSim's own JointReaction loads on those trials is as medial (76-83 % of the
stance load against the implant's 66-72 %; ours 79-84 %), so this is the split's geometry, not our muscle forces;
OpenSim 4.6 puts the same markers' midpoint 6.9 mm medial of ``GC5.osim``'s own tibia origin
(:func:`models.muscles.kcf_comparison.opensim_epicondyle_centre`).

Here the contact points are placed symmetrically about the subject's **knee joint centre, the midpoint of the
medial and lateral femoral epicondyles** (the anatomical definition of Cappozzo et al. 1995 Clin Biomech 10:171;
Grood & Suntay 1983 J Biomech Eng 105:136 put the knee's flexion axis through the epicondyles), each at the half
spacing ``h`` of Winby 2009 (20 mm on the unscaled MyoLeg tibia, i.e. a 40 mm intercondylar distance, scaled by
the tibia length):  ``d_m = h + c``, ``d_l = h - c`` with ``c`` the centre's medial offset from the tibia origin.
Only the mediolateral coordinate enters: the axial loads' moment about the tibia's anterior axis does not depend on
the points' height or depth.  Nothing here is fitted to an implant.

Where the markers are missing, on the wrong body or implausible (width outside ``WIDTH_RANGE_M``, or a centre more
than half the half spacing from the knee centre: a misplaced marker, e.g. ``DM_markers.xml``'s ``R.Knee.Medial``),
the symmetric points are kept and :attr:`CondyleGeometry.source` says why.

This module is pure computation: numpy, mujoco and other ``models/`` modules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import mujoco
import numpy as np

__all__ = ["WIDTH_RANGE_M", "CondyleGeometry", "condyle_geometry", "epicondyle_markers"]

WIDTH_RANGE_M = (0.06, 0.20)            # epicondyle marker distance accepted (bony 75-100 mm + skin and markers)
_KNEE = re.compile(r"(knee|kne|epicond)", re.IGNORECASE)
_MED = re.compile(r"med", re.IGNORECASE)
_LAT = re.compile(r"lat", re.IGNORECASE)


@dataclass(frozen=True)
class CondyleGeometry:
    """Contact points of one knee: ``offsets_m`` = ``(d_m, d_l)``, distances (m) of the medial and lateral points
    from the tibia origin along the medial / lateral direction (the ``condyle_offsets_m`` of
    :class:`models.muscles.knee_contact.KneeContact`); ``centre_m``: their midpoint's medial offset from the tibia
    origin (m); ``half_spacing_m``: half their distance (m); ``source``: where the centre comes from."""

    offsets_m: tuple[float, float]
    centre_m: float
    half_spacing_m: float
    source: str


def epicondyle_markers(markerset, side: str) -> tuple[str | None, str | None]:
    """Names of the medial and lateral knee (epicondyle) markers of ``side`` on ``femur_<s>`` in ``markerset``
    (:class:`models.body.markerset.MarkerSet`): a name with ``knee`` / ``kne`` / ``epicond`` and ``med`` (``lat``);
    ``None`` where there is not exactly one."""
    s = _side_letter(side)
    on_femur = [mk.name for mk in markerset if mk.body == f"femur_{s}" and _KNEE.search(mk.name)]
    med = [n for n in on_femur if _MED.search(n) and not _LAT.search(n)]
    lat = [n for n in on_femur if _LAT.search(n) and not _MED.search(n)]
    return (med[0] if len(med) == 1 else None), (lat[0] if len(lat) == 1 else None)


def _side_letter(side: str) -> str:
    s = {"left": "l", "right": "r"}.get(side)
    if s is None:
        raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
    return s


def _in_tibia_frame(model: mujoco.MjModel, markerset, names: tuple[str, str], side: str) -> np.ndarray:
    """(2, 3) positions (m) of markers ``names`` in the tibia frame of ``side`` at the model's neutral pose
    (``qpos0``: knee extended, the static trial's posture)."""
    d = mujoco.MjData(model)
    d.qpos[:] = model.qpos0
    mujoco.mj_kinematics(model, d)
    tib = model.body(f"tibia_{_side_letter(side)}").id
    R, o = d.xmat[tib].reshape(3, 3), d.xpos[tib]
    out = []
    for n in names:
        mk = markerset.marker(n)
        b = model.body(mk.body).id
        out.append((d.xpos[b] + d.xmat[b].reshape(3, 3) @ np.asarray(mk.offset_m) - o) @ R)
    return np.array(out)


def condyle_geometry(model: mujoco.MjModel, side: str, markerset=None, *,
                     half_spacing_m: float) -> CondyleGeometry:
    """The contact points of ``side`` on ``model`` (a scaled MyoLeg): symmetric about the midpoint of the
    subject's epicondyle markers in ``markerset`` when it has a plausible pair, else about the tibia origin, each
    ``half_spacing_m`` (m) from that centre (the chain's: Winby's 20 mm times the tibia scale,
    :func:`models.muscles.knee_contact.subject_condyle_geometry`)."""
    s = _side_letter(side)
    h = float(half_spacing_m)
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"half_spacing_m = {half_spacing_m!r}: must be a finite length > 0 m")

    def symmetric(why: str) -> CondyleGeometry:
        return CondyleGeometry((h, h), 0.0, h, f"tibia origin (model knee centre): {why}")

    if markerset is None:
        return symmetric("no marker set")
    med, lat = epicondyle_markers(markerset, side)
    if med is None or lat is None:
        return symmetric(f"no single medial/lateral knee marker pair on femur_{s} (medial {med!r}, lateral {lat!r})")
    p = _in_tibia_frame(model, markerset, (med, lat), side)
    medial_sign = 1.0 if s == "l" else -1.0            # medial = +z (left), -z (right) in the tibia frame
    width = medial_sign * float(p[0, 2] - p[1, 2])
    if not (WIDTH_RANGE_M[0] <= width <= WIDTH_RANGE_M[1]):
        return symmetric(f"{med}/{lat} {width * 1e3:.1f} mm apart mediolaterally, outside "
                         f"{WIDTH_RANGE_M[0] * 1e3:.0f}-{WIDTH_RANGE_M[1] * 1e3:.0f} mm (misplaced marker?)")
    c = medial_sign * float(0.5 * (p[0, 2] + p[1, 2]))
    if abs(c) > 0.5 * h:
        return symmetric(f"{med}/{lat} midpoint {c * 1e3:+.1f} mm from the knee centre, more than half the "
                         f"{h * 1e3:.1f} mm half spacing (misplaced marker?)")
    return CondyleGeometry((h + c, h - c), c, h, f"epicondyle midpoint of {med}/{lat} ({c * 1e3:+.1f} mm medial)")
