"""Scale a musculoskeletal template (MyoLeg, MyoFullBody, ...) to one subject's mass, height and static trial.

Rules (SI units; every factor is dimensionless)
-----------------------------------------------
Lengths (``s``).  One uniform factor per body, applied to everything expressed in that body's frame: child body
positions (``s`` of the parent), geom positions, sizes and ``fromto``, mesh scale, site positions and sizes, joint
anchors, frames, cameras and lights, the inertial position.

* Height factor ``s_H = height_m / template_height_m`` for every body.  The template height comes from the model
  (:func:`models.body.registry.measure_height`, stored in ``ModelInfo.height_m``): MyoFullBody 1.723 m, the top of the
  head minus the sole (lowest body geometry, the toe contact capsules) in the default pose; MyoLeg 1.638 m, its
  hip-joint-centre height above the sole (0.868 m) divided by Winter's greater-trochanter ratio 0.530 (Winter 2009,
  *Biomechanics and Motor Control of Human Movement*, 4th ed., Fig. 4.1); MyoBimanualArm shares MyoFullBody's
  stature.  ``template_height_m=`` overrides it.
* With a static trial, per-segment factors replace ``s_H`` on the bodies a :class:`SegmentMeasure` names:
  ``s = |mean(distal markers) - mean(proximal markers)| / |x_distal_body - x_proximal_body|``, the model distance
  between the two body origins (joint centres) at ``qpos0``.  The default :data:`LOWER_LIMB_MARKER_MAP` measures
  hip-joint-centre to knee-centre (femur + patella) and knee-centre to ankle-centre (tibia) on each side, the knee
  and ankle centres being the midpoints of the epicondyle and malleolus markers; this is OpenSim's ScaleTool idea
  (Delp et al. 2007, IEEE TBME 54:1940) with uniform per-body factors.  Only distances are used, so the markers may
  be in any rigid frame (an OpenSim y-up ``.trc`` needs no rotation) but must be in metres.
* Coordinates that are lengths follow their parent body's factor, as OpenSim scales a CustomJoint's translation
  functions with the parent body: slide-joint ranges/``ref``/``springref``, keyframe values, and the polynomial
  coefficients of joint-coupling equalities (``a_k`` of ``y = sum a_k x^k`` times ``s_y / s_x^k``; MyoLeg's knee
  translations are slaved to the knee angle this way).  The root body's position in the world and the free root's
  position in keyframes scale with ``s_H``.

Masses and inertias.  Every body mass times ``k_m = mass_kg / template_mass_kg`` (the mass distribution of the
template is kept, OpenSim's "preserve mass distribution"), so the total is the subject's mass exactly; each
principal inertia times ``k_m * s_body**2`` (inertia ~ m L^2); the inertial frame orientation is unchanged.  The
template's compiled inertials are written back as explicit ``<inertial>`` values before scaling, so the result does
not depend on which bodies had explicit inertials or geometry-derived ones.

Muscles (MuJoCo's parameterisation, ``mju_muscleGain``/``mju_muscleBias``).  A MuJoCo muscle has no stored optimal
fibre length or tendon slack length.  It has ``lengthrange = [Lmin, Lmax]`` of the actuator (muscle-tendon) length
and ``gainprm[0:2] = range = [r0, r1]`` of normalised lengths, and the compiler derives

    L0 = (Lmax - Lmin) / (r1 - r0)        the optimal fibre length analogue (length at which the active force is F0)
    LT = Lmin - r0 * L0                   the constant offset, the tendon slack length analogue (rigid tendon)

so the normalised fibre length is ``(actuator_length - LT) / L0``.  Scaling ``lengthrange`` by a factor ``r``
scales ``L0`` and ``LT`` by the same ``r`` and keeps ``range``, ``lmin``, ``lmax``, ``vmax`` (in L0/s), ``fpmax``,
``fvmax`` unchanged.  ``r`` is the ratio of the muscle-tendon length after / before scaling at ``qpos0``, OpenSim's
rule for optimal fibre length and tendon slack length (``extendPostScale`` of OpenSim 4's muscles); with one uniform
factor it is exactly ``s_H``, with per-segment factors it blends the factors of the segments the path crosses.
The compiler's automatic length-range computation is not rerun (the templates set ``useexisting``).  Tendon
``springlength``/``range`` scale by the tendon's length ratio the same way.

Maximum isometric force ``F0`` (``gainprm[2]`` and ``biasprm[2]``, both, they differ for MyoFullBody's SUPSP):
``F0 * k_m ** strength_exponent`` with ``strength_exponent = 1`` by default, i.e. **F0 proportional to body mass**.
Justification: muscle volume scales with mass x height (Handsfield et al. 2014, J Biomech 47:631, MRI of 35
lower-limb muscles in 24 subjects), and ``PCSA = volume / optimal fibre length`` with fibre length ~ height, so
``PCSA`` and ``F0`` scale with mass; it is also the dynamically similar choice: joint moments of a scaled motion
scale with ``m g L`` and moment arms with ``L``, so required muscle forces scale with ``m`` and static-optimisation
activations do not change with the subject's size.  ``strength_exponent = 2/3`` gives the geometric-similarity law
``F0 ~ m^(2/3)`` used to normalise strength across people (Jaric 2002, Sports Med 32:615), which, combined with an
independent height factor, would make heavier subjects of the same height relatively weaker.  ``forcerange`` of a
force-limited muscle scales with ``F0``.

Subject-specific ``F0`` (``scale_model(..., max_isometric_force_n={muscle: N})``, e.g. from the subject's own
OpenSim model via :func:`opensim_max_isometric_forces`) replaces the mass rule for the named muscles: ``gainprm[2] =
F0``, ``biasprm[2]`` and ``forcerange`` by the same ratio. Why it matters (measured, GC5 subject PS, see
``models/muscles/static_optimization.py``): the lab's ``GC5.osim`` gives every muscle crossing the knee about 0.6 x the
MyoLeg template's ``F0`` (vasti 0.58-0.68, rectus femoris 0.59, hamstrings 0.57-0.61, gastrocnemii 0.72/0.84) while
soleus is 1.16 x. Static optimisation with ``sum a^2`` shares a moment in proportion to ``r A^2`` (``A = F0`` x
force-length-velocity), so the template's strong biarticular knee muscles took the ankle and hip moments from soleus
and the hip flexors and had to be balanced by the other side of the knee: knee contact force ~2 x the implant's.
OpenSim's ``F0`` is the fibre's maximum isometric force and is used as MuJoCo's ``F0`` unchanged; MuJoCo muscles
have no pennation, so along the tendon this is up to 1/cos(alpha0) too strong for a pennated muscle (8 % at 0.4 rad;
soleus 0.38 rad). The template's own values are the myo-sim conversion's fit, not Rajagopal's (soleus 5322 N against
6195 N).

Unchanged (documented choices): joint stiffness, damping, armature and friction loss; contact parameters, margins
and solver settings; non-muscle actuators; geometry owned by the world body (floor, scenery, cameras).

Pitfalls met with MuJoCo 4.0 ``MjSpec`` edits (handled here)
-----------------------------------------------------------
* The templates set ``compiler.boundmass``/``boundinertia`` (MyoFullBody: 0.001 kg, 1e-4 kg m^2); they would floor
  scaled-down tiny bodies and break the exact total mass, so they are cleared once the compiled inertials are
  explicit.  ``inertiafromgeom`` is forced to ``auto`` so the explicit inertials win; ``fullinertia`` must be NaN
  and ``ialt`` a quaternion or they override ``inertia``/``iquat``.
* A body exactly on the triangle inequality (``lumbar2``: 0.01682 = 0.01091 + 0.00591) leaves it by one rounding
  error once scaled, and ``balanceinertia`` then silently replaces all three moments by their mean (70 % off), so
  the largest is clipped to just under the sum of the other two.
* Mesh ``scale`` lives on the mesh asset: a mesh shared by bodies with different factors is duplicated.  MuJoCo
  re-centres meshes on their centroid and rotates them to principal axes, so compiled ``mesh_vert`` of a scaled mesh
  may come out with flipped axes; compare vertices in the body frame, not ``mesh_vert`` directly.
* The muscle ``lengthrange`` in the spec is authoritative (``LRopt.useexisting``): moving the geometry alone would
  leave the template's L0 and LT.  ``biasprm[2]`` holds F0 for the passive force and must be scaled with
  ``gainprm[2]`` (they differ for MyoFullBody's SUPSP: 339 N active, 497 N passive).
* ``enum == numpy_int`` is False in these bindings (``numpy_int == enum`` works), so
  ``x in (mjtJoint.mjJNT_SLIDE, ...)`` never matches a value read from an ``MjModel`` array; compare ints.
* The ``attach``-built MyoLeg spec contains frames (``legs_attach``) between bodies: their positions scale too.

This module is pure computation: it imports numpy, mujoco, :mod:`models.body.registry`, the memo
:mod:`models.body.subject_cache` and :mod:`models.io.xml_cache` (each ``.osim`` parsed once per file version).
"""

from __future__ import annotations

import dataclasses
import os

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

import mujoco
import numpy as np

from models.io.reader_support import close_matches_error
from models.io.xml_cache import cached_derived
from models.body.registry import ModelInfo, MusculoskeletalModel, _compile, is_muscle, load_model
from models.body.subject_cache import SCALED_MODELS, clear_scale_cache, scaled_model_key

__all__ = [
    "SubjectScale",
    "SegmentMeasure",
    "ScaleFactors",
    "LOWER_LIMB_MARKER_MAP",
    "MASS_RANGE_KG",
    "HEIGHT_RANGE_M",
    "compute_scale_factors",
    "scale_model",
    "opensim_max_isometric_forces",
    "clear_scale_cache",
]

#: Accepted subject mass (kg) and height (m), the same bounds as the runtime's ``SubjectProfile``.
MASS_RANGE_KG = (20.0, 250.0)
HEIGHT_RANGE_M = (0.5, 2.5)

# A per-segment factor further than this from the height factor is a unit or marker-name mistake, not anatomy.
_SEGMENT_VS_HEIGHT_LIMITS = (0.67, 1.5)


@dataclass(frozen=True)
class SubjectScale:
    """A subject's body mass (kg) and standing height (m), validated at construction."""

    mass_kg: float
    height_m: float

    def __post_init__(self) -> None:
        for fld, (lo, hi), unit in (("mass_kg", MASS_RANGE_KG, "kg"), ("height_m", HEIGHT_RANGE_M, "m")):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"SubjectScale.{fld} must be a number in {unit}, got {v!r}")
            if not math.isfinite(float(v)) or not lo <= float(v) <= hi:
                raise ValueError(f"SubjectScale.{fld}={v!r} is outside {lo:g}..{hi:g} {unit}")
            object.__setattr__(self, fld, float(v))


@dataclass(frozen=True)
class SegmentMeasure:
    """One segment length measured in a static trial, and the bodies whose length factor it sets.

    The subject's length is the distance between the mean of ``proximal_markers`` and the mean of
    ``distal_markers``; the model's is the distance between the origins of ``proximal_body`` and ``distal_body``
    (joint centres) in the default pose.  Their ratio scales every body in ``bodies``.
    """

    name: str
    proximal_markers: tuple[str, ...]
    distal_markers: tuple[str, ...]
    proximal_body: str
    distal_body: str
    bodies: tuple[str, ...]

    def __post_init__(self) -> None:
        for fld in ("proximal_markers", "distal_markers", "bodies"):
            v = getattr(self, fld)
            if isinstance(v, str) or len(tuple(v)) == 0:
                raise ValueError(f"SegmentMeasure {self.name!r}: {fld}={v!r} must be a non-empty tuple of names")
            object.__setattr__(self, fld, tuple(v))


def _lower_limb(side: str) -> tuple[SegmentMeasure, SegmentMeasure]:
    S = side.upper()
    return (
        SegmentMeasure(f"thigh_{side}", (f"{S}HJC",), (f"{S}KneeLateral", f"{S}KneeMedial"),
                       f"femur_{side}", f"tibia_{side}", (f"femur_{side}", f"patella_{side}")),
        SegmentMeasure(f"shank_{side}", (f"{S}KneeLateral", f"{S}KneeMedial"), (f"{S}AnkleLateral", f"{S}AnkleMedial"),
                       f"tibia_{side}", f"talus_{side}", (f"tibia_{side}",)),
    )


#: Thigh (hip joint centre -> knee centre) and shank (knee centre -> ankle centre) on both sides, for the MyoLeg
#: family (MyoLeg, MyoFullBody).  Marker names follow the Grand Challenge labs (``RKneeLateral``...); ``RHJC`` and
#: ``LHJC`` are virtual hip-joint-centre markers the caller computes (e.g. Harrington et al. 2007 regression from the
#: pelvis markers).  Pass your own tuple of :class:`SegmentMeasure` for other names or segments.
LOWER_LIMB_MARKER_MAP: tuple[SegmentMeasure, ...] = _lower_limb("r") + _lower_limb("l")


@dataclass(frozen=True)
class ScaleFactors:
    """Everything :func:`scale_model` decided, for provenance and for tests.

    ``length_by_body`` maps every body name (world excluded) to its length factor; ``measured`` maps each
    :class:`SegmentMeasure` name to ``(subject_length_m, model_length_m)``.
    """

    subject: SubjectScale
    template_name: str
    template_height_m: float
    template_height_basis: str
    template_mass_kg: float
    height_factor: float
    mass_factor: float
    strength_exponent: float
    force_factor: float
    length_by_body: Mapping[str, float] = field(repr=False)
    measured: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def uniform(self) -> bool:
        """True when every body has the height factor (no static trial, or it agreed exactly)."""
        return all(f == self.height_factor for f in self.length_by_body.values())


# --------------------------------------------------------------------------------------------------
# factors
# --------------------------------------------------------------------------------------------------


def _marker_point(static_markers: Mapping[str, np.ndarray], names: tuple[str, ...], measure: str) -> np.ndarray:
    pts = []
    for n in names:
        if n not in static_markers:
            raise close_matches_error("marker", n, sorted(static_markers), f"static trial, segment {measure!r}")
        a = np.asarray(static_markers[n], dtype=float)
        if a.ndim == 2 and a.shape[1] == 3:  # a static trial: average the frames, ignoring gaps
            with np.errstate(all="ignore"):
                a = np.nanmean(a, axis=0)
        if a.shape != (3,) or not np.all(np.isfinite(a)):
            raise ValueError(f"static marker {n!r} (segment {measure!r}) must be a finite xyz position in metres, "
                             f"shape (3,) or (frames, 3); got shape {np.shape(static_markers[n])} value {a!r}")
        pts.append(a)
    return np.mean(pts, axis=0)


def compute_scale_factors(template: MusculoskeletalModel, subject: SubjectScale,
                          static_markers: Mapping[str, np.ndarray] | None = None,
                          marker_map: Sequence[SegmentMeasure] | None = None, *,
                          template_height_m: float | None = None,
                          strength_exponent: float = 1.0) -> ScaleFactors:
    """The length, mass and force factors :func:`scale_model` applies (see the module docstring for the rules)."""
    if not isinstance(subject, SubjectScale):
        raise TypeError(f"subject must be a SubjectScale, got {type(subject).__name__}")
    if not (math.isfinite(strength_exponent) and 0.0 <= strength_exponent <= 1.5):
        raise ValueError(f"strength_exponent={strength_exponent!r} is outside 0..1.5 (1 = F0 ~ mass, 2/3 = F0 ~ "
                         "mass^(2/3))")
    m = template.readonly_model
    info = template.info
    if template_height_m is None:
        template_height_m, basis = info.height_m, info.height_basis
        if template_height_m is None:
            raise ValueError(f"template {info.name!r} has no measurable height ({info.height_basis}); pass "
                             "template_height_m=")
    else:
        if not (math.isfinite(template_height_m) and HEIGHT_RANGE_M[0] <= template_height_m <= HEIGHT_RANGE_M[1]):
            raise ValueError(f"template_height_m={template_height_m!r} is outside {HEIGHT_RANGE_M[0]:g}.."
                             f"{HEIGHT_RANGE_M[1]:g} m")
        basis = "given by the caller"
    s_h = subject.height_m / template_height_m
    k_m = subject.mass_kg / info.mass_kg
    lengths = {m.body(b).name: s_h for b in range(1, m.nbody)}
    measured: dict[str, tuple[float, float]] = {}

    if marker_map is not None and static_markers is None:
        raise ValueError("marker_map was given without static_markers: pass the static trial's marker positions")
    if static_markers is not None:
        measures = tuple(LOWER_LIMB_MARKER_MAP if marker_map is None else marker_map)
        d = mujoco.MjData(m)
        mujoco.mj_kinematics(m, d)
        owner: dict[str, str] = {}
        for sm in measures:
            if not isinstance(sm, SegmentMeasure):
                raise TypeError(f"marker_map entries must be SegmentMeasure, got {type(sm).__name__}")
            p = _marker_point(static_markers, sm.proximal_markers, sm.name)
            q = _marker_point(static_markers, sm.distal_markers, sm.name)
            subj = float(np.linalg.norm(q - p))
            model_len = float(np.linalg.norm(d.xpos[template.body_id(sm.distal_body)]
                                             - d.xpos[template.body_id(sm.proximal_body)]))
            if model_len <= 0.0:
                raise ValueError(f"segment {sm.name!r}: bodies {sm.proximal_body!r} and {sm.distal_body!r} coincide "
                                 "in the model")
            f = subj / model_len
            lo, hi = _SEGMENT_VS_HEIGHT_LIMITS
            if not lo <= f / s_h <= hi:
                raise ValueError(
                    f"segment {sm.name!r}: marker distance {subj:.4f} m against model {model_len:.4f} m gives factor "
                    f"{f:.3f}, but the height factor is {s_h:.3f} (ratio outside {lo}..{hi}): markers not in metres, "
                    "or the wrong markers?")
            measured[sm.name] = (subj, model_len)
            for b in sm.bodies:
                template.body_id(b)  # raises KeyError with close matches
                if b in owner:
                    raise ValueError(f"body {b!r} is scaled by two segment measures: {owner[b]!r} and {sm.name!r}")
                owner[b] = sm.name
                lengths[b] = f

    return ScaleFactors(
        subject=subject, template_name=info.name, template_height_m=float(template_height_m),
        template_height_basis=basis, template_mass_kg=info.mass_kg, height_factor=s_h, mass_factor=k_m,
        strength_exponent=float(strength_exponent), force_factor=k_m ** strength_exponent,
        length_by_body=MappingProxyType(lengths), measured=MappingProxyType(measured))


# --------------------------------------------------------------------------------------------------
# spec edits
# --------------------------------------------------------------------------------------------------

_NAN6 = np.full(6, np.nan)


def _triangle_safe(inertia: np.ndarray) -> np.ndarray:
    """Principal inertias with the largest clipped to the sum of the other two.

    Bodies that sit exactly on the triangle inequality (MyoLeg's ``lumbar2``: 0.01682 = 0.01091 + 0.00591) can leave
    it by one rounding error after scaling, and ``compiler.balanceinertia`` would then replace all three by their
    mean (a 70 % change); the clip (to 1 - 2e-15 of the sum) changes the value by about 1e-15 instead.
    """
    inertia = np.array(inertia, dtype=float)
    k = int(np.argmax(inertia))
    others = float(inertia[(k + 1) % 3] + inertia[(k + 2) % 3]) * (1.0 - 8 * np.finfo(float).eps)
    inertia[k] = min(inertia[k], others)
    return inertia


def _scaled_fromto(x: np.ndarray, f: float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x if np.isnan(x[0]) else x * f


def _copy_mesh(spec: mujoco.MjSpec, mesh: mujoco.MjsMesh, name: str) -> mujoco.MjsMesh:
    new = spec.add_mesh()
    for attr in ("file", "content_type", "refpos", "refquat", "scale", "inertia", "smoothnormal", "maxhullvert",
                 "uservert", "usernormal", "usertexcoord", "userface", "userfacenormal", "userfacetexcoord",
                 "material", "needsdf", "octree_maxdepth"):
        if hasattr(mesh, attr):
            try:
                setattr(new, attr, getattr(mesh, attr))
            except (TypeError, ValueError, AttributeError):  # pragma: no cover - attribute absent in this build
                pass
    new.name = name
    return new


def _length_factor(fac: ScaleFactors, b: mujoco.MjsBody) -> float:
    """The factor of lengths expressed in body ``b``'s frame; the world's children keep standing on the floor."""
    return fac.height_factor if b.name == "world" or b.id == 0 else fac.length_by_body[b.name]


def _is_world(b: mujoco.MjsBody) -> bool:
    return b.id == 0


def _scale_bodies(spec: mujoco.MjSpec, model: mujoco.MjModel, fac: ScaleFactors) -> None:
    """Body positions in the parent frame; explicit inertials from the compiled template (mass * k_m,
    inertia * k_m f^2); frames with their body."""
    L, k_m = fac.length_by_body, fac.mass_factor
    for b in spec.bodies:
        if _is_world(b):
            continue
        f, fp = L[b.name], _length_factor(fac, b.parent)
        b.pos = np.asarray(b.pos) * fp
        i = b.id
        mass = float(model.body_mass[i])
        if mass > 0.0:
            b.explicitinertial = True
            b.mass = mass * k_m
            b.ipos = model.body_ipos[i] * f
            b.iquat = model.body_iquat[i].copy()
            b.ialt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT
            b.inertia = _triangle_safe(model.body_inertia[i] * (k_m * f * f))
            b.fullinertia = _NAN6
    spec.compiler.boundmass = 0.0
    spec.compiler.boundinertia = 0.0
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_AUTO
    spec.compiler.settotalmass = -1.0
    # frames: positions in their body (world frames hold bodies: scale with the height)
    for fr in spec.frames:
        fr.pos = np.asarray(fr.pos) * _length_factor(fac, fr.parent)


def _scale_geoms_and_meshes(spec: mujoco.MjSpec, fac: ScaleFactors) -> None:
    """Geom positions and sizes; a mesh used by bodies of different factors is duplicated per factor."""
    L = fac.length_by_body
    mesh_users: dict[str, dict[float, list[mujoco.MjsGeom]]] = {}
    for g in spec.geoms:
        if _is_world(g.parent):
            continue
        f = L[g.parent.name]
        g.pos = np.asarray(g.pos) * f
        g.size = np.asarray(g.size) * f
        g.fromto = _scaled_fromto(g.fromto, f)
        if g.type == mujoco.mjtGeom.mjGEOM_MESH and g.meshname:
            mesh_users.setdefault(g.meshname, {}).setdefault(f, []).append(g)
    for mname, by_factor in mesh_users.items():
        mesh = spec.mesh(mname)
        base_scale = np.asarray(mesh.scale, dtype=float).copy()
        for k, (f, geoms) in enumerate(sorted(by_factor.items())):
            if k == 0:
                mesh.scale = base_scale * f
                continue
            dup = _copy_mesh(spec, mesh, f"{mname}__scaled{k}")
            dup.scale = base_scale * f
            for g in geoms:
                g.meshname = dup.name


def _scale_sites_cameras_lights(spec: mujoco.MjSpec, fac: ScaleFactors) -> None:
    L = fac.length_by_body
    for st in spec.sites:
        if _is_world(st.parent):
            continue
        f = L[st.parent.name]
        st.pos = np.asarray(st.pos) * f
        st.size = np.asarray(st.size) * f
        st.fromto = _scaled_fromto(st.fromto, f)
    for el in list(spec.cameras) + list(spec.lights):
        if not _is_world(el.parent):
            el.pos = np.asarray(el.pos) * L[el.parent.name]


def _scale_joints(spec: mujoco.MjSpec, fac: ScaleFactors) -> dict[str, float]:
    """Joint anchors in the body; slide coordinates are lengths of the parent segment.
    Returns the factor of each slide joint (name -> factor)."""
    slide_factor: dict[str, float] = {}
    for j in spec.joints:
        b = j.parent
        j.pos = np.asarray(j.pos) * fac.length_by_body[b.name]
        if j.type == mujoco.mjtJoint.mjJNT_SLIDE:
            fp = _length_factor(fac, b.parent)
            slide_factor[j.name] = fp
            j.range = np.asarray(j.range) * fp
            j.ref = j.ref * fp
            j.springref = j.springref * fp
    return slide_factor


def _scale_keyframes(spec: mujoco.MjSpec, model: mujoco.MjModel, fac: ScaleFactors,
                     slide_factor: dict[str, float]) -> None:
    """Keyframes: free-root translation with the height, slide joints with their parent."""
    qpos_scale = np.ones(model.nq)
    for jid in range(model.njnt):
        adr = model.jnt_qposadr[jid]
        if model.jnt_type[jid] == mujoco.mjtJoint.mjJNT_FREE:
            qpos_scale[adr:adr + 3] = _length_factor(fac, spec.bodies[model.jnt_bodyid[jid]].parent)
        elif model.jnt_type[jid] == mujoco.mjtJoint.mjJNT_SLIDE:
            qpos_scale[adr] = slide_factor.get(model.joint(jid).name, fac.height_factor)
    for key in spec.keys:
        q = np.asarray(key.qpos, dtype=float)
        if q.size == model.nq:
            key.qpos = q * qpos_scale


def _scale_equalities(spec: mujoco.MjSpec, fac: ScaleFactors, slide_factor: dict[str, float]) -> None:
    """Joint-coupling equalities y = sum a_k x^k (y, x lengths or angles), connect/weld anchors."""
    L, s_h = fac.length_by_body, fac.height_factor
    for e in spec.equalities:
        data = np.asarray(e.data, dtype=float).copy()
        if e.type == mujoco.mjtEq.mjEQ_JOINT:
            fy = slide_factor.get(e.name1, 1.0)
            fx = slide_factor.get(e.name2, 1.0) if e.name2 else 1.0
            data[:5] = data[:5] * fy / fx ** np.arange(5)
        elif e.type == mujoco.mjtEq.mjEQ_CONNECT and e.objtype != mujoco.mjtObj.mjOBJ_SITE:
            data[0:3] *= L.get(e.name1, s_h)  # anchor in body1's frame
        elif e.type == mujoco.mjtEq.mjEQ_WELD and e.objtype != mujoco.mjtObj.mjOBJ_SITE:
            data[0:3] *= L.get(e.name2, s_h) if e.name2 else s_h  # anchor in body2's frame
            data[3:6] *= L.get(e.name1, s_h)  # relpose position of body2 in body1's frame
        else:
            continue  # tendon equalities are handled with the tendon lengths
        e.data = data


def _apply_geometry(spec: mujoco.MjSpec, model: mujoco.MjModel, fac: ScaleFactors) -> None:
    """Scale positions, sizes, meshes, inertials and length coordinates in ``spec`` (compiled twin: ``model``)."""
    _scale_bodies(spec, model, fac)
    _scale_geoms_and_meshes(spec, fac)
    _scale_sites_cameras_lights(spec, fac)
    slide_factor = _scale_joints(spec, fac)
    _scale_keyframes(spec, model, fac, slide_factor)
    _scale_equalities(spec, fac, slide_factor)


def opensim_max_isometric_forces(osim_path: "str | os.PathLike[str]",
                                 muscle_names: Sequence[str] | None = None) -> dict[str, float]:
    """``{muscle: max_isometric_force (N)}`` of every muscle in an OpenSim ``.osim`` file (any muscle class with a
    ``<max_isometric_force>``), restricted to ``muscle_names`` when given (names absent from the file are skipped).
    Read with the standard library XML parser, once per file version (:func:`models.io.xml_cache.cached_derived`;
    a fresh dict each call); no OpenSim install needed."""
    import xml.etree.ElementTree as ET

    try:
        out = cached_derived(osim_path, "scaling.max_isometric_forces", lambda root: _forces_from_root(root, osim_path))
    except (OSError, ET.ParseError) as exc:
        raise ValueError(f"osim_path = {str(osim_path)!r}: cannot read an OpenSim model ({exc})") from exc
    if muscle_names is not None:
        keep = set(muscle_names)
        out = {k: v for k, v in out.items() if k in keep}
    return out


def _forces_from_root(root, osim_path: "str | os.PathLike[str]") -> dict[str, float]:
    out: dict[str, float] = {}
    for el in root.iter():
        f = el.find("max_isometric_force")
        name = el.get("name")
        if f is None or name is None or f.text is None:
            continue
        value = float(f.text)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{osim_path}: muscle {name!r} max_isometric_force = {f.text!r}: must be > 0 N")
        out[name] = value
    if not out:
        raise ValueError(f"osim_path = {str(osim_path)!r}: no muscle with a <max_isometric_force> in it")
    return out


def _check_forces(template: mujoco.MjModel, forces: Mapping[str, float], model_name: str) -> dict[str, float]:
    muscle = is_muscle(template)
    names = [template.actuator(i).name for i in range(template.nu) if muscle[i]]
    out = {}
    for k, v in forces.items():
        if k not in names:
            raise close_matches_error("muscle", str(k), names, f"max_isometric_force_n ({model_name})")
        v = float(v)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"max_isometric_force_n[{k!r}] = {v!r}: must be a finite force > 0 N")
        out[k] = v
    return out


def _apply_muscles(spec: mujoco.MjSpec, template: mujoco.MjModel, scaled: mujoco.MjModel,
                   fac: ScaleFactors, f0_by_muscle: Mapping[str, float] | None = None) -> None:
    """Scale muscle length ranges by the muscle-tendon length ratio at qpos0, F0 by the force factor (or set it
    from ``f0_by_muscle``, N)."""
    if fac.uniform:
        act_ratio = np.full(template.nu, fac.height_factor)
        ten_ratio = np.full(template.ntendon, fac.height_factor)
    else:
        d0, d1 = mujoco.MjData(template), mujoco.MjData(scaled)
        mujoco.mj_fwdPosition(template, d0)
        mujoco.mj_fwdPosition(scaled, d1)
        with np.errstate(divide="ignore", invalid="ignore"):
            act_ratio = np.where(np.abs(d0.actuator_length) > 1e-9, d1.actuator_length / d0.actuator_length,
                                 fac.height_factor)
            ten_ratio = np.where(np.abs(d0.ten_length) > 1e-9, d1.ten_length / d0.ten_length, fac.height_factor)
    muscle = is_muscle(template)
    k_f = fac.force_factor
    for i, a in enumerate(spec.actuators):
        if not muscle[i]:
            continue
        a.lengthrange = template.actuator_lengthrange[i] * act_ratio[i]
        g = np.asarray(a.gainprm, dtype=float).copy()
        bp = np.asarray(a.biasprm, dtype=float).copy()
        k = k_f
        if f0_by_muscle and template.actuator(i).name in f0_by_muscle:
            k = f0_by_muscle[template.actuator(i).name] / template.actuator_gainprm[i, 2]
        g[2] = template.actuator_gainprm[i, 2] * k  # compiled F0 (resolves the automatic force < 0 case)
        bp[2] = template.actuator_biasprm[i, 2] * k
        a.gainprm, a.biasprm = g, bp
        if template.actuator_forcelimited[i]:
            a.forcerange = template.actuator_forcerange[i] * k
    for t, tn in enumerate(spec.tendons):
        r = ten_ratio[t]
        tn.springlength = np.asarray(tn.springlength) * r
        tn.range = np.asarray(tn.range) * r
    for e in spec.equalities:
        if e.type == mujoco.mjtEq.mjEQ_TENDON:
            data = np.asarray(e.data, dtype=float).copy()
            fy = ten_ratio[mujoco.mj_name2id(template, mujoco.mjtObj.mjOBJ_TENDON, e.name1)]
            fx = ten_ratio[mujoco.mj_name2id(template, mujoco.mjtObj.mjOBJ_TENDON, e.name2)] if e.name2 else 1.0
            data[:5] = data[:5] * fy / fx ** np.arange(5)
            e.data = data


def scale_model(template: str | MusculoskeletalModel, subject: SubjectScale,
                static_markers: Mapping[str, np.ndarray] | None = None,
                marker_map: Sequence[SegmentMeasure] | None = None, *,
                template_height_m: float | None = None,
                strength_exponent: float = 1.0,
                length_by_body: Mapping[str, float] | None = None,
                max_isometric_force_n: Mapping[str, float] | None = None) -> MusculoskeletalModel:
    """A copy of ``template`` scaled to ``subject`` (rules in the module docstring); the template is untouched.

    ``length_by_body``: explicit length factors for named bodies (e.g. the segment ratios of an OpenSim model
    already scaled to the subject), overriding the height/static-trial factors of those bodies; geometry and
    muscle length ranges follow them exactly as for measured segments.

    ``max_isometric_force_n``: ``{muscle: F0 (N)}`` for named muscles (e.g. :func:`opensim_max_isometric_forces`
    of the subject's OpenSim model), replacing the mass rule for those muscles; unknown names raise ``KeyError``.

    ``template``: a registry name (``"myoleg"``...) or a loaded model carrying its ``MjSpec``.
    ``static_markers``: marker name -> position (m), shape (3,) or (frames, 3) averaged ignoring NaN, any rigid
    frame; ``marker_map``: the :class:`SegmentMeasure` tuple to use with them (default
    :data:`LOWER_LIMB_MARKER_MAP`).  ``template_height_m`` overrides the template's stature; ``strength_exponent``
    sets ``F0 ~ mass^strength_exponent`` (default 1).  The result carries its :class:`ScaleFactors` in
    ``.scale_factors`` and an edited ``MjSpec`` in ``.spec``.

    Memoised (:mod:`models.body.subject_cache`): the compiled result is kept per content key (the template's
    untouched registry spec and its model, every factor, the given F0) and each call returns a fresh
    ``MusculoskeletalModel`` with its own ``MjModel``/``MjSpec`` copies (made on first use), so scaling a subject
    for every trial of a session compiles once; a template whose ``spec`` was handed out is scaled afresh every
    time.  :func:`clear_scale_cache` forgets the kept models.
    """
    tmpl = load_model(template) if isinstance(template, str) else template
    if not isinstance(tmpl, MusculoskeletalModel):
        raise TypeError(f"template must be a model name or a MusculoskeletalModel, got {type(template).__name__}")
    fac = compute_scale_factors(tmpl, subject, static_markers, marker_map, template_height_m=template_height_m,
                                strength_exponent=strength_exponent)
    if length_by_body:
        unknown = sorted(set(length_by_body) - set(fac.length_by_body))
        if unknown:
            raise KeyError(f"length_by_body: no such bodies in {tmpl.info.name}: {unknown}")
        bad = {b: f for b, f in length_by_body.items() if not (math.isfinite(f) and 0.3 <= f <= 3.0)}
        if bad:
            raise ValueError(f"length_by_body: factors outside 0.3..3: {bad}")
        fac = dataclasses.replace(fac, length_by_body={**fac.length_by_body, **{b: float(f) for b, f in length_by_body.items()}})
    f0 = _check_forces(tmpl.readonly_model, max_isometric_force_n, tmpl.info.name) if max_isometric_force_n else None
    key = scaled_model_key(tmpl, fac, f0)
    hit = SCALED_MODELS.get(key)
    if hit is not None:
        return hit
    model, spec = _scaled_spec_and_model(tmpl, fac, f0)
    return SCALED_MODELS.put(key, model, _scaled_info(tmpl, model, fac, f0), spec, fac)


def _scaled_spec_and_model(tmpl: MusculoskeletalModel, fac: ScaleFactors, f0: Mapping[str, float] | None, *,
                           one_compile: bool = True) -> tuple[mujoco.MjModel, mujoco.MjSpec]:
    """The edited spec and its compiled model.  Per-segment factors need the scaled geometry compiled (muscle
    length ratios at qpos0); ``one_compile`` then writes the muscle parameters into that compiled model
    (:func:`_write_muscles`) instead of compiling the spec a second time (``one_compile=False``: the reference,
    tested equal array by array)."""
    spec = tmpl.editable_spec()
    _apply_geometry(spec, tmpl.readonly_model, fac)
    geometry_only = None if fac.uniform else _compile(spec)
    _apply_muscles(spec, tmpl.readonly_model, geometry_only, fac, f0)
    if geometry_only is not None and one_compile and _write_muscles(spec, geometry_only):
        return geometry_only, spec
    return _compile(spec), spec


def _write_muscles(spec: mujoco.MjSpec, model: mujoco.MjModel) -> bool:
    """Copy what :func:`_apply_muscles` set in ``spec`` into ``model`` compiled before it, as the compiler would
    (muscle length ranges used as given, ``useexisting``; F0 already resolved); ``False`` (nothing written) when a
    tendon spring length is automatic (negative), which only a compile resolves."""
    springs = [np.asarray(t.springlength, dtype=float) for t in spec.tendons]
    if any((s < 0).any() for s in springs):
        return False
    muscle = is_muscle(model)
    for i, a in enumerate(spec.actuators):
        if not muscle[i]:
            continue
        model.actuator_lengthrange[i] = a.lengthrange
        model.actuator_gainprm[i] = a.gainprm
        model.actuator_biasprm[i] = a.biasprm
        if model.actuator_forcelimited[i]:
            model.actuator_forcerange[i] = a.forcerange
    for t, tn in enumerate(spec.tendons):
        model.tendon_lengthspring[t] = springs[t]
        model.tendon_range[t] = tn.range
    for e in spec.equalities:
        if e.type == mujoco.mjtEq.mjEQ_TENDON:
            model.eq_data[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_EQUALITY, e.name)] = e.data
    return True


def _scaled_info(tmpl: MusculoskeletalModel, model: mujoco.MjModel, fac: ScaleFactors,
                 f0: Mapping[str, float] | None) -> ModelInfo:
    sub = fac.subject
    return ModelInfo.from_mjmodel(
        model,
        name=f"{tmpl.info.name}@{sub.mass_kg:g}kg_{sub.height_m:g}m",
        source=(f"scale_model({tmpl.info.name}, mass_kg={sub.mass_kg:g}, height_m={sub.height_m:g}"
                f"{', static trial' if fac.measured else ''}"
                f"{f', F0 of {len(f0)} muscles given' if f0 else ''}) of {tmpl.info.source}"),
        height_m=sub.height_m,
        height_basis=f"subject height (template {fac.template_height_m:.4f} m: {fac.template_height_basis})",
    )
