"""Lab marker sets: which body each motion-capture marker sits on, and where, for a MuJoCo model.

A :class:`MarkerSet` is a list of :class:`Marker` ``(name, body, offset_m)``: marker ``name`` is rigidly
attached to MuJoCo body ``body`` at ``offset_m`` (3,), metres, **in that body's frame**.  Markers are not
added to the model as sites; :class:`models.kinematics.inverse_kinematics.InverseKinematics` computes their world
position at run time as ``xpos[body] + xmat[body] @ offset_m`` (so a marker set can change without
recompiling the model, which takes about 2 s for MyoLeg).

Reading OpenSim marker sets
---------------------------
:func:`from_opensim_markerset` parses the ``<MarkerSet>`` of an ``.osim`` model (OpenSim 3.3 ``<body>``
or OpenSim 4 ``<socket_parent_frame>/bodyset/...``) or of a bare marker file (``DM_markers.xml``).

*Frames.*  MyoLeg was converted from the Rajagopal 2016 OpenSim model by MyoConverter and keeps its
body frames: every MyoLeg leg body (``pelvis``, ``femur_*``, ``tibia_*``, ``talus_*``, ``calcn_*``,
``toes_*``, ``patella_*``) has an identity orientation relative to its parent, and the whole OpenSim
y-up skeleton hangs below the ``pelvis`` body, whose ``body_quat`` (0.5, 0.5, -0.5, -0.5) is the y-up ->
z-up rotation (plus a yaw: with the free root at identity MyoLeg faces world -y, left is +x).  So an
OpenSim marker ``location`` (x forward, y up, z right, in the OpenSim body frame) is used **unrotated**
as the MyoLeg body-frame offset.  :attr:`MarkerSet.frame_check_deg` records, per body, the angle between
the child-body origins in the source model and in the MuJoCo model (0 deg when the frames agree).

*Scaling.*  The source model is usually scaled to a subject (GC5.osim is Rajagopal scaled to subject PS,
1.80 m) while the MuJoCo model is generic (MyoLeg: the unscaled Rajagopal model).  Each body's marker
offsets are multiplied by that body's segment-length ratio ``|child origin|_mujoco / |child origin|_source``
(uniform per body, summed over the body's children; origins at the default pose in the parent frame,
MuJoCo joint equalities applied); bodies without children (toes, patella) take their parent's ratio.
For GC5 these ratios are the inverses of the OpenSim Scale tool's per-body factors (pelvis 1/1.099,
femur 1/1.011, tibia 1/1.063, foot 1/1.071) to 0.03 %, recorded in :attr:`MarkerSet.source_scale_factors`
as a cross-check.  This is the simple option: markers are moved onto the generic skeleton, whose
segments keep their generic lengths.  It costs accuracy: on the GC5 walking trials the IK on generic
MyoLeg is biased against the lab's IK by about -5 deg at the knee and -9 deg at the ankle, because a
1.80 m subject's markers do not fit a smaller skeleton.  :func:`scale_model_kinematics` makes a
kinematics-only copy of the model with the source's segment lengths; markers read onto that copy get
ratios of 1 and the same IK agrees with the lab's to about 1.5 deg RMSE.

*Bodies that are dropped* (reason kept in :attr:`MarkerSet.dropped`): ``ground`` (lab reference markers
fixed in the room), bodies the MuJoCo model lacks (arms: humerus, radius, ...), bodies listed in
``exclude_bodies`` (default ``torso``: MyoLeg's torso is welded to the pelvis, it has no lumbar joint,
while the lab's IK moves the trunk by up to 20 deg of lumbar extension, so trunk markers would only bias
the pelvis), and markers whose offset is implausibly far from their body (``max_offset_m``; DM_markers.xml
has ``R.Knee.Medial`` 1.2 m from the femur origin).

Each file is parsed once per process and file version (:mod:`models.io.xml_cache`); the readers return fresh
copies.  Pure computation: numpy, mujoco and the standard library.
"""

from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from models.io.xml_cache import cached_derived

__all__ = [
    "Marker",
    "MarkerSet",
    "OsimBody",
    "from_opensim_markerset",
    "read_osim_bodies",
    "marker_positions_world",
    "apply_joint_equalities",
    "scale_model_kinematics",
    "DEFAULT_EXCLUDE_BODIES",
]

#: Bodies whose markers are left out by default (see the module docstring).
DEFAULT_EXCLUDE_BODIES: tuple[str, ...] = ("torso",)

#: Bodies of lab reference markers fixed in the room; never attached to the skeleton.
_GROUND_BODIES = ("ground",)


class Marker(NamedTuple):
    """One marker: ``name`` on MuJoCo body ``body`` at ``offset_m`` (3,), metres, in the body frame."""

    name: str
    body: str
    offset_m: np.ndarray


@dataclass(frozen=True, eq=False)
class MarkerSet:
    """An ordered, immutable set of :class:`Marker`; iterating yields ``(name, body, offset_m)``.

    Provenance fields are informational: ``source`` (file read), ``scale_factors`` (body -> ratio applied
    to the source offsets), ``source_scale_factors`` (body -> the OpenSim Scale tool's factor where the
    source records one), ``frame_check_deg`` (body -> angle between source and MuJoCo child-body origins),
    ``dropped`` (marker -> why it is not in the set).
    """

    markers: tuple[Marker, ...]
    source: str = ""
    scale_factors: Mapping[str, float] = field(default_factory=dict)
    source_scale_factors: Mapping[str, float] = field(default_factory=dict)
    frame_check_deg: Mapping[str, float] = field(default_factory=dict)
    dropped: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fixed: list[Marker] = []
        seen: set[str] = set()
        for mk in self.markers:
            name, body, off = mk
            off = np.array(off, dtype=float).reshape(-1)
            if off.shape != (3,) or not np.all(np.isfinite(off)):
                raise ValueError(f"marker {name!r}: offset_m must be 3 finite numbers, got {mk[2]!r}")
            if name in seen:
                raise ValueError(f"marker {name!r} appears twice in the marker set")
            seen.add(name)
            off.setflags(write=False)
            fixed.append(Marker(str(name), str(body), off))
        object.__setattr__(self, "markers", tuple(fixed))
        for key in ("scale_factors", "source_scale_factors", "frame_check_deg", "dropped"):
            object.__setattr__(self, key, MappingProxyType(dict(getattr(self, key))))

    # -- list-like -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Marker]:
        return iter(self.markers)

    def __len__(self) -> int:
        return len(self.markers)

    def __getitem__(self, i: int) -> Marker:
        return self.markers[i]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.markers)

    @property
    def bodies(self) -> tuple[str, ...]:
        return tuple(m.body for m in self.markers)

    @property
    def offsets_m(self) -> np.ndarray:
        """(M, 3) offsets, metres, each in its body's frame (a fresh array)."""
        if not self.markers:
            return np.zeros((0, 3))
        return np.stack([m.offset_m for m in self.markers])

    def marker(self, name: str) -> Marker:
        for m in self.markers:
            if m.name == name:
                return m
        raise KeyError(f"no marker {name!r} in the marker set; markers: {list(self.names)}")

    def select(self, names: Iterable[str]) -> "MarkerSet":
        """A new set with only ``names``, in that order (KeyError names the unknown ones)."""
        names = list(names)
        by = {m.name: m for m in self.markers}
        unknown = [n for n in names if n not in by]
        if unknown:
            raise KeyError(f"markers not in the set: {unknown}; markers: {list(self.names)}")
        return self._replace_markers(tuple(by[n] for n in names))

    def without(self, names: Iterable[str]) -> "MarkerSet":
        """A new set without ``names`` (unknown names are ignored)."""
        drop = set(names)
        return self._replace_markers(tuple(m for m in self.markers if m.name not in drop))

    def _replace_markers(self, markers: tuple[Marker, ...]) -> "MarkerSet":
        return MarkerSet(
            markers=markers,
            source=self.source,
            scale_factors=self.scale_factors,
            source_scale_factors=self.source_scale_factors,
            frame_check_deg=self.frame_check_deg,
            dropped=self.dropped,
        )

    def body_ids(self, model: Any) -> np.ndarray:
        """(M,) MuJoCo body ids; KeyError lists the model's bodies when one is missing."""
        ids = np.empty(len(self.markers), dtype=np.int64)
        names = _body_names(model)
        for i, m in enumerate(self.markers):
            try:
                ids[i] = names.index(m.body)
            except ValueError:
                raise KeyError(
                    f"marker {m.name!r} is on body {m.body!r}, which the model does not have; bodies: {names}"
                ) from None
        return ids


def marker_positions_world(model: Any, data: Any, markerset: MarkerSet, out: np.ndarray | None = None) -> np.ndarray:
    """(M, 3) world positions, metres, of the markers for the kinematics already in ``data``
    (call ``mujoco.mj_kinematics`` first): ``xpos[body] + xmat[body] @ offset_m``."""
    ids = markerset.body_ids(model)
    off = markerset.offsets_m
    r = np.asarray(data.xmat)[ids].reshape(-1, 3, 3)
    p = np.einsum("mij,mj->mi", r, off) + np.asarray(data.xpos)[ids]
    if out is None:
        return p
    out[...] = p
    return out


# --------------------------------------------------------------------------------------------------
# OpenSim parsing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OsimBody:
    """A body of an OpenSim model as far as marker scaling needs it.

    ``origin_in_parent_m``: this body's origin in its parent's frame at the default pose (joint translations
    evaluated at the coordinates' default values, joint rotations ignored), metres, OpenSim axes.
    ``scale_factors``: what the OpenSim Scale tool recorded for the body (OpenSim 3.3
    ``VisibleObject/scale_factors``), or None.
    """

    name: str
    parent: str | None
    origin_in_parent_m: np.ndarray | None
    scale_factors: tuple[float, float, float] | None = None


def _floats(text: str | None, n: int, where: str) -> np.ndarray:
    vals = (text or "").split()
    try:
        arr = np.array([float(v) for v in vals], dtype=float)
    except ValueError:
        raise ValueError(f"{where}: expected {n} numbers, got {text!r}") from None
    if arr.shape != (n,):
        raise ValueError(f"{where}: expected {n} numbers, got {text!r}")
    return arr


def _rot_xyz_body_fixed(angles: np.ndarray) -> np.ndarray:
    """OpenSim's orientation convention: body-fixed X-Y-Z Euler angles, rad -> rotation matrix."""
    a, b, c = (float(v) for v in angles)
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rx @ ry @ rz


def _strip_body_path(s: str) -> str:
    s = s.strip()
    for prefix in ("/bodyset/", "bodyset/"):
        if s.startswith(prefix):
            return s[len(prefix):]
    if s.startswith("/"):
        s = s[1:]
    return s


def _origin_in_parent(
    p_pf: np.ndarray, r_pf: np.ndarray, p_bm: np.ndarray, r_bm: np.ndarray, t_joint: np.ndarray | None = None
) -> np.ndarray:
    """Child origin in the parent frame at the default pose, joint rotations ignored:
    X_PB = X_PF * Translate(t_joint) * X_BM^-1."""
    t = np.zeros(3) if t_joint is None else t_joint
    return p_pf + r_pf @ (t - r_bm.T @ p_bm)


def _eval_function(fn: ET.Element | None, x: float, where: str) -> float:
    """Value of an OpenSim Function element at x (linear interpolation for splines)."""
    if fn is None:
        return 0.0
    tag = fn.tag
    if tag == "function":  # OpenSim 3.3 wraps the function in <function>
        return _eval_function(fn[0] if len(fn) else None, x, where)
    if tag == "LinearFunction":
        a, b = _floats(fn.findtext("coefficients"), 2, f"{where} LinearFunction")
        return float(a * x + b)
    if tag == "Constant":
        return float(fn.findtext("value", "0"))
    if tag == "MultiplierFunction":
        scale = float(fn.findtext("scale", "1"))
        inner = fn.find("function")
        return scale * _eval_function(inner, x, where)
    if tag in ("SimmSpline", "NaturalCubicSpline", "GCVSpline", "PiecewiseLinearFunction", "PiecewiseConstantFunction"):
        xs = np.array([float(v) for v in (fn.findtext("x") or "").split()])
        ys = np.array([float(v) for v in (fn.findtext("y") or "").split()])
        if xs.size == 0 or xs.size != ys.size:
            raise ValueError(f"{where}: {tag} with {xs.size} x and {ys.size} y values")
        return float(np.interp(x, xs, ys))
    raise ValueError(
        f"{where}: unsupported OpenSim function <{tag}>; supported: LinearFunction, Constant, "
        "MultiplierFunction, SimmSpline, NaturalCubicSpline, GCVSpline, PiecewiseLinearFunction"
    )


_FUNCTION_TAGS = (
    "function", "LinearFunction", "Constant", "MultiplierFunction", "SimmSpline", "NaturalCubicSpline",
    "GCVSpline", "PiecewiseLinearFunction", "PiecewiseConstantFunction",
)


def _joint_translation(joint: ET.Element, defaults: Mapping[str, float], where: str) -> np.ndarray:
    """Translation of a CustomJoint's SpatialTransform at the coordinates' default values (zero for
    joints without one).  A TransformAxis without coordinates is evaluated at 0."""
    t = np.zeros(3)
    st = joint.find("SpatialTransform")
    if st is None:
        return t
    for ax in st.findall("TransformAxis"):
        if not (ax.get("name") or "").startswith("translation"):
            continue
        coords = (ax.findtext("coordinates") or "").split()
        x = float(defaults.get(coords[0], 0.0)) if coords else 0.0
        axis = _floats(ax.findtext("axis", "0 0 0"), 3, f"{where} {ax.get('name')} axis")
        fn = next((c for c in ax if c.tag in _FUNCTION_TAGS), None)
        t += axis * _eval_function(fn, x, f"{where} {ax.get('name')}")
    return t


def read_osim_bodies(osim_path: str | Path) -> dict[str, OsimBody]:
    """Bodies of an OpenSim 3.3 or 4.x model with their parent and zero-pose origin (see :class:`OsimBody`).

    The file is parsed once per process and version (:func:`models.io.xml_cache.cached_derived`); every call
    returns a fresh copy."""
    path = Path(osim_path)
    return cached_derived(path, "markerset.osim_bodies", lambda root: _bodies_from_root(root, str(path)))


def _bodies_from_root(root: ET.Element, where: str) -> dict[str, OsimBody]:
    bodies: dict[str, OsimBody] = {}
    defaults: dict[str, float] = {}
    for c in root.iter("Coordinate"):
        if c.get("name"):
            try:
                defaults[c.get("name")] = float(c.findtext("default_value", "0"))
            except ValueError:
                raise ValueError(f"{where}: coordinate {c.get('name')!r} default_value is not a number") from None
    # OpenSim 3.3: <Body name=...><Joint><XxxJoint><parent_body>, location_in_parent, orientation_in_parent,
    # location, orientation
    for body in root.iter("Body"):
        name = body.get("name")
        if not name:
            continue
        sf = None
        vis = body.find("VisibleObject")
        if vis is not None:
            sft = vis.find("scale_factors")
            if sft is not None and sft.text:
                v = _floats(sft.text, 3, f"{where}: body {name} VisibleObject/scale_factors")
                sf = (float(v[0]), float(v[1]), float(v[2]))
        parent = None
        origin = None
        jnt_holder = body.find("Joint")
        if jnt_holder is not None and len(jnt_holder):
            j = jnt_holder[0]
            pb = j.find("parent_body")
            if pb is not None and pb.text:
                parent = pb.text.strip()
                jw = f"{where}: joint {j.get('name')}"
                p_pf = _floats(j.findtext("location_in_parent", "0 0 0"), 3, jw + " location_in_parent")
                r_pf = _rot_xyz_body_fixed(_floats(j.findtext("orientation_in_parent", "0 0 0"), 3, jw))
                p_bm = _floats(j.findtext("location", "0 0 0"), 3, jw + " location")
                r_bm = _rot_xyz_body_fixed(_floats(j.findtext("orientation", "0 0 0"), 3, jw))
                origin = _origin_in_parent(p_pf, r_pf, p_bm, r_bm, _joint_translation(j, defaults, jw))
        bodies[name] = OsimBody(name, parent, origin, sf)
    # OpenSim 4: <JointSet><objects><XxxJoint><socket_parent_frame>, <socket_child_frame>, <frames>
    for js in root.iter("JointSet"):
        objs = js.find("objects")
        for j in list(objs if objs is not None else js):
            spf, scf = j.findtext("socket_parent_frame"), j.findtext("socket_child_frame")
            if spf is None or scf is None:
                continue
            frames: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
            fr = j.find("frames")
            jw = f"{where}: joint {j.get('name')}"
            for f in list(fr) if fr is not None else []:
                fname = f.get("name")
                sp = f.findtext("socket_parent")
                if not fname or sp is None:
                    continue
                t = _floats(f.findtext("translation", "0 0 0"), 3, f"{jw} frame {fname} translation")
                o = _floats(f.findtext("orientation", "0 0 0"), 3, f"{jw} frame {fname} orientation")
                frames[fname] = (_strip_body_path(sp), t, _rot_xyz_body_fixed(o))

            def resolve(s: str) -> tuple[str, np.ndarray, np.ndarray]:
                s = s.strip()
                if s in frames:
                    return frames[s]
                return _strip_body_path(s), np.zeros(3), np.eye(3)

            pbody, p_pf, r_pf = resolve(spf)
            cbody, p_bm, r_bm = resolve(scf)
            prev = bodies.get(cbody)
            origin = _origin_in_parent(p_pf, r_pf, p_bm, r_bm, _joint_translation(j, defaults, jw))
            bodies[cbody] = OsimBody(cbody, pbody, origin, prev.scale_factors if prev else None)
    return bodies


def _parse_markers(path: Path) -> list[tuple[str, str, np.ndarray]]:
    """``(name, source body, location)`` of every marker in the file (parsed once per version; a fresh copy)."""
    return cached_derived(path, "markerset.markers", lambda root: _markers_from_root(root, str(path)))


def _markers_from_root(root: ET.Element, where: str) -> list[tuple[str, str, np.ndarray]]:
    sets = [root] if root.tag == "MarkerSet" else list(root.iter("MarkerSet"))
    if not sets:
        raise ValueError(f"{where}: no <MarkerSet> element")
    out: list[tuple[str, str, np.ndarray]] = []
    for ms in sets:
        for mk in ms.iter("Marker"):
            name = mk.get("name")
            if not name:
                raise ValueError(f"{where}: a <Marker> without a name attribute")
            body_txt = mk.findtext("socket_parent_frame")
            if body_txt is None:
                body_txt = mk.findtext("body")
            if body_txt is None or not body_txt.strip():
                raise ValueError(f"{where}: marker {name!r} has neither <socket_parent_frame> nor <body>")
            loc = _floats(mk.findtext("location"), 3, f"{where}: marker {name!r} <location>")
            out.append((name, _strip_body_path(body_txt), loc))
    return out


# --------------------------------------------------------------------------------------------------
# MuJoCo side
# --------------------------------------------------------------------------------------------------


def _as_mjmodel(model: Any) -> Any:
    """The ``MjModel`` to read (this module never modifies it; a MusculoskeletalModel's is read uncopied)."""
    for attr in ("readonly_model", "mj_model", "model"):
        inner = getattr(model, attr, None)
        if inner is not None and hasattr(inner, "body_pos"):
            return inner
    return model


def _body_names(model: Any) -> list[str]:
    m = _as_mjmodel(model)
    return [m.body(i).name for i in range(m.nbody)]


def _quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    w, x, y, z = (float(c) for c in q)
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    return r @ v


def apply_joint_equalities(model: Any, qpos: np.ndarray) -> None:
    """Set, in place, every coordinate that an active MuJoCo joint equality (``mjEQ_JOINT``) ties to
    another: ``q1 = qpos0_1 + sum_k c_k (q2 - qpos0_2)^k`` (k = 0..4), or ``q1 = qpos0_1 + c_0`` without
    ``q2``.  This is how MyoLeg couples the knee's translations and secondary rotations and the patella
    to ``knee_angle_*`` (the equalities are soft in a simulation; kinematics wants them exact)."""
    m = _as_mjmodel(model)
    import mujoco

    for e in range(m.neq):
        if int(m.eq_type[e]) != int(mujoco.mjtEq.mjEQ_JOINT) or not bool(m.eq_active0[e]):
            continue
        j1, j2 = int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
        c = m.eq_data[e]
        a1 = int(m.jnt_qposadr[j1])
        if j2 < 0:
            qpos[a1] = m.qpos0[a1] + c[0]
            continue
        a2 = int(m.jnt_qposadr[j2])
        x = qpos[a2] - m.qpos0[a2]
        qpos[a1] = m.qpos0[a1] + c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * c[4])))


def _mj_child_origins(model: Any) -> dict[str, dict[str, np.ndarray]]:
    """body -> {child body -> child origin in the body's frame}, at qpos0 with the joint equalities
    applied (so MyoLeg's patella sits where its coupled slide joints put it at knee_angle = 0)."""
    import mujoco

    m = _as_mjmodel(model)
    names = _body_names(m)
    d = mujoco.MjData(m)
    q = np.array(m.qpos0, dtype=float)
    apply_joint_equalities(m, q)
    d.qpos[:] = q
    mujoco.mj_kinematics(m, d)
    out: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
    for b in range(1, m.nbody):
        p = int(m.body_parentid[b])
        r = np.asarray(d.xmat[p]).reshape(3, 3)
        out[names[p]][names[b]] = r.T @ (np.asarray(d.xpos[b]) - np.asarray(d.xpos[p]))
    return out


def _segment_scales(
    src: Mapping[str, OsimBody], model: Any, bodies: Iterable[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-body uniform ratio (MuJoCo / source) of summed child-origin distances, and the frame check
    (largest angle, deg, between matching child-origin vectors)."""
    mj = _mj_child_origins(model)
    src_children: dict[str, dict[str, np.ndarray]] = {}
    for b in src.values():
        if b.parent is not None and b.origin_in_parent_m is not None:
            src_children.setdefault(b.parent, {})[b.name] = b.origin_in_parent_m
    scales: dict[str, float] = {}
    checks: dict[str, float] = {}

    def own(body: str) -> float | None:
        s_src = src_children.get(body, {})
        s_mj = mj.get(body, {})
        common = [c for c in s_src if c in s_mj]
        num = sum(float(np.linalg.norm(s_mj[c])) for c in common)
        den = sum(float(np.linalg.norm(s_src[c])) for c in common)
        if not common or den < 1e-6 or num < 1e-6:
            return None
        worst = 0.0
        for c in common:
            a, b = s_mj[c], s_src[c]
            na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            if na > 1e-3 and nb > 1e-3:
                cosang = float(np.clip(a @ b / (na * nb), -1.0, 1.0))
                worst = max(worst, math.degrees(math.acos(cosang)))
        checks[body] = worst
        return num / den

    for body in bodies:
        s = own(body)
        cur = body
        while s is None:  # leaf bodies (toes, patella) take the parent's ratio
            parent = src[cur].parent if cur in src else None
            if parent is None or parent == "ground":
                s = 1.0
                break
            cur = parent
            s = own(cur)
        scales[body] = float(s)
    return scales, checks


# --------------------------------------------------------------------------------------------------
# public constructor
# --------------------------------------------------------------------------------------------------


def from_opensim_markerset(
    osim_path: str | Path,
    model: Any | None = None,
    *,
    source_model_path: str | Path | None = None,
    body_map: Mapping[str, str] | None = None,
    exclude_bodies: Sequence[str] = DEFAULT_EXCLUDE_BODIES,
    scale_to_model: bool = True,
    max_offset_m: float = 0.6,
) -> MarkerSet:
    """Read an OpenSim ``<MarkerSet>`` and place its markers on the bodies of a MuJoCo model.

    ``osim_path``: an ``.osim`` model with a MarkerSet (e.g. ``GC5_PS/model/GC5.osim``) or a bare MarkerSet
    file (``GC6_DM/model/DM_markers.xml``).  ``model``: the MuJoCo model the markers are for (an
    ``MjModel`` or an object with ``.mj_model``); with it, markers on bodies the model lacks are dropped and,
    with ``scale_to_model``, offsets are scaled per body by the segment-length ratio model/source (see the
    module docstring).  ``source_model_path``: the ``.osim`` whose skeleton the marker offsets refer to;
    defaults to ``osim_path`` when that is a model, else the offsets are taken unscaled (and
    ``scale_factors`` says 1.0).  ``body_map``: source body name -> model body name, for bodies named
    differently (identity otherwise; MyoLeg uses the Rajagopal names).  Offsets stay in the body frame,
    OpenSim axes, which are MyoLeg's body axes.
    """
    path = Path(osim_path)
    raw = _parse_markers(path)
    bmap = dict(body_map or {})
    exclude = set(exclude_bodies)
    if max_offset_m <= 0:
        raise ValueError(f"max_offset_m must be > 0, got {max_offset_m}")

    mj_bodies: list[str] | None = _body_names(model) if model is not None else None
    dropped: dict[str, str] = {}
    kept: list[tuple[str, str, str, np.ndarray]] = []  # name, source body, model body, offset
    for name, sbody, loc in raw:
        mbody = bmap.get(sbody, sbody)
        if sbody in _GROUND_BODIES:
            dropped[name] = f"on {sbody!r}: a lab reference marker fixed in the room, not on the subject"
        elif sbody in exclude or mbody in exclude:
            dropped[name] = f"on {sbody!r}, excluded (exclude_bodies={sorted(exclude)})"
        elif mj_bodies is not None and mbody not in mj_bodies:
            dropped[name] = f"on {sbody!r}, which the model does not have"
        elif float(np.linalg.norm(loc)) > max_offset_m:
            dropped[name] = (
                f"offset {np.round(loc, 4).tolist()} m is {np.linalg.norm(loc):.3f} m from the {sbody!r} origin "
                f"(> max_offset_m={max_offset_m}); a placement error in the source file"
            )
        else:
            kept.append((name, sbody, mbody, loc))

    src_path: Path | None
    if source_model_path is not None:
        src_path = Path(source_model_path)
    else:
        src_path = path if path.suffix.lower() == ".osim" else None
    src_bodies = read_osim_bodies(src_path) if src_path is not None else {}

    scales: dict[str, float] = {}
    checks: dict[str, float] = {}
    used_src = sorted({k[1] for k in kept})
    if model is not None and scale_to_model and src_bodies:
        # the ratio is computed with model-side names; map the source tree onto them
        renamed = {
            bmap.get(n, n): OsimBody(bmap.get(n, n), bmap.get(b.parent, b.parent) if b.parent else None,
                                     b.origin_in_parent_m, b.scale_factors)
            for n, b in src_bodies.items()
        }
        scales, checks = _segment_scales(renamed, model, sorted({k[2] for k in kept}))
    else:
        scales = {k[2]: 1.0 for k in kept}
    src_sf = {}
    for sb in used_src:
        b = src_bodies.get(sb)
        if b is not None and b.scale_factors is not None:
            src_sf[bmap.get(sb, sb)] = float(np.mean(b.scale_factors))

    markers = tuple(Marker(name, mbody, loc * scales.get(mbody, 1.0)) for name, _, mbody, loc in kept)
    return MarkerSet(
        markers=markers,
        source=str(path),
        scale_factors=scales,
        source_scale_factors=src_sf,
        frame_check_deg={k: v for k, v in checks.items() if k in scales},
        dropped=dropped,
    )


def scale_model_kinematics(
    model: Any, osim_path: str | Path, *, body_map: Mapping[str, str] | None = None
) -> Any:
    """A **kinematics-only** copy of ``model`` whose segments have the lengths of an OpenSim model's
    (e.g. MyoLeg -> subject PS through ``GC5.osim``), for inverse kinematics.

    Each body gets the uniform factor ``1 / ratio`` of :func:`from_opensim_markerset` (source/model
    child-origin distances; bodies the source lacks, like MyoLeg's torso chain, keep 1).  Scaled: every
    ``body_pos`` by its parent's factor, ``jnt_pos`` by its body's factor, and slide joints (their range,
    and the polynomial of a joint equality that drives one, e.g. MyoLeg's knee translations) by the
    factor of the parent of the slide's body.  **Not** scaled: masses, inertias, geoms, sites, muscle and
    tendon paths, so the copy is wrong for dynamics and muscle lengths; it exists because marker IK on
    the generic skeleton is biased (GC5 trials: knee -5 deg, ankle -10 deg against the lab IK) while the
    same IK on this copy agrees within about 1.5 deg RMSE.  Its use is to reproduce exactly the segment
    lengths of an existing OpenSim model (a lab's scaled ``.osim``), e.g. to validate against that lab's
    IK; for a model used downstream (inverse dynamics, muscles) scale it with
    :func:`models.body.scaling.scale_model` and read the markers onto that model instead.
    """
    import mujoco

    src_model = _as_mjmodel(model)
    m = copy.deepcopy(src_model)
    bmap = dict(body_map or {})
    src = read_osim_bodies(osim_path)
    renamed = {
        bmap.get(n, n): OsimBody(bmap.get(n, n), bmap.get(b.parent, b.parent) if b.parent else None,
                                 b.origin_in_parent_m, b.scale_factors)
        for n, b in src.items()
    }
    names = _body_names(m)
    ratios, _ = _segment_scales(renamed, m, [n for n in names if n in renamed])
    factor = np.array([1.0 / ratios[n] if n in ratios and ratios[n] > 0 else 1.0 for n in names])
    parent = np.asarray(m.body_parentid)
    for b in range(1, m.nbody):
        m.body_pos[b] *= factor[parent[b]]
    slide = int(mujoco.mjtJoint.mjJNT_SLIDE)
    for j in range(m.njnt):
        b = int(m.jnt_bodyid[j])
        m.jnt_pos[j] *= factor[b]
        if int(m.jnt_type[j]) == slide:
            m.jnt_range[j] *= factor[parent[b]]
    for e in range(m.neq):
        if int(m.eq_type[e]) != int(mujoco.mjtEq.mjEQ_JOINT):
            continue
        j1 = int(m.eq_obj1id[e])
        if int(m.jnt_type[j1]) == slide:
            m.eq_data[e][:5] *= factor[parent[int(m.jnt_bodyid[j1])]]
    return m
