"""Results OpenSim opens: joint angles (``.mot``), foot loads (``.mot`` + ``ExternalLoads`` ``.xml``), joint moments
(``.sto``), in OpenSim's file conventions and axes.

Frames: OpenSim ground is x forward, y up, z right; the project's world is z up (x forward, y left, z up), so every
vector written here goes through :func:`z_up_to_opensim` (``(x, y, z) -> (x, z, -y)``, the inverse of
:func:`models.io.axes.opensim_to_z_up`).  Coordinates are already OpenSim's (the IK solves the model's OpenSim
coordinate names, pelvis translations in OpenSim ground), so they are written as they are, angles in degrees.

Files (pure text, no ``opensim`` import; :mod:`tests.test_opensim_export` reads them back with OpenSim 4.6):

* :func:`write_coordinates_mot`: ``Coordinates`` header, ``inDegrees=yes``, ``time`` then one column per coordinate;
  the patella coordinate ``knee_angle_<s>_beta`` of the Rajagopal family (coupled 1:1 to ``knee_angle_<s>`` in
  Rajagopal 2015/2016 and ``GC5.osim``) is added beside each knee, so OpenSim's coupler constraint holds.  Coupled
  coordinates (``*_beta``) are written in radians even in a degrees file: OpenSim 4 converts only coordinates of
  rotational motion type from degrees, and writes coupled ones in radians itself (the opensim_walk Rajagopal IK:
  ``knee_angle_r`` 70.82, ``knee_angle_r_beta`` 1.236).  Written in degrees, the patella spins 57 times too far and
  OpenSim's hip moments in swing reach hundreds of N m (measured on PS ss1 with GC5.osim).
* :func:`write_foot_loads_mot`: per foot ``<k>_ground_force_v{x,y,z}`` (N), ``<k>_ground_force_p{x,y,z}`` (m, centre
  of pressure in ground) and ``<k>_ground_torque_{x,y,z}`` (N m, free moment about that point), ``k`` = 1 left,
  2 right (numbered like the lab's plates, so :func:`models.trial_analysis.force_plates` reads it too); a frame
  without a centre of pressure (NaN: the foot is unloaded) is written as zero force and free moment at the origin
  (OpenSim reads no NaN).
* :func:`write_external_loads_xml`: one ``ExternalForce`` per foot on ``calcn_l`` / ``calcn_r``, force and point
  expressed in ground, the ``.mot`` as ``datafile`` (its file name: OpenSim resolves it beside the ``.xml``).
* :func:`write_moments_sto`: OpenSim InverseDynamicsTool's naming: ``<coordinate>_moment`` (N m) for rotations,
  ``<coordinate>_force`` (N) for translations; the free root's residual force (N) and moment (N m, about the root
  origin) in ground axes as ``pelvis_residual_force_{x,y,z}`` / ``pelvis_residual_moment_{x,y,z}``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence
from xml.sax.saxutils import escape

import numpy as np

__all__ = ["FOOT_LOAD_PREFIX", "z_up_to_opensim", "write_coordinates_mot", "write_foot_loads_mot",
           "write_external_loads_xml", "write_moments_sto", "write_opensim_results"]

FOOT_LOAD_PREFIX = {"left": "1_", "right": "2_"}
FOOT_BODY = {"left": "calcn_l", "right": "calcn_r"}
_TRANSLATIONS = ("_tx", "_ty", "_tz")
_COUPLED = ("_beta",)                      # OpenSim motion type "coupled": radians in every file


def z_up_to_opensim(v: np.ndarray) -> np.ndarray:
    """Vectors from the z-up world (x forward, y left, z up) to OpenSim ground (x forward, y up, z right):
    ``(x, y, z) -> (x, z, -y)`` on the last axis (length 3), NaN preserved."""
    v = np.asarray(v, dtype=float)
    if v.shape[-1:] != (3,):
        raise ValueError(f"z_up_to_opensim expects a last axis of length 3, got shape {v.shape}")
    out = np.empty_like(v)
    out[..., 0] = v[..., 0]
    out[..., 1] = v[..., 2]
    out[..., 2] = -v[..., 1]
    return out


def _check_table(time_s: np.ndarray, data: np.ndarray, names: Sequence[str], what: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time_s, dtype=float).ravel()
    d = np.asarray(data, dtype=float)
    if d.ndim != 2 or d.shape != (t.size, len(names)):
        raise ValueError(f"{what}: data shape {d.shape} does not match {t.size} times x {len(names)} columns")
    if t.size < 2 or not np.all(np.diff(t) > 0):
        raise ValueError(f"{what}: time_s must hold at least 2 strictly increasing times")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: duplicate column names {sorted({n for n in names if list(names).count(n) > 1})}")
    bad = [n for n, ok in zip(names, np.all(np.isfinite(d), axis=0)) if not ok]
    if bad:
        raise ValueError(f"{what}: column(s) {bad[:5]} hold NaN or infinite values (OpenSim reads no NaN)")
    return t, d


def _write_table(path: Path, title: str, time_s: np.ndarray, data: np.ndarray, names: Sequence[str],
                 in_degrees: bool, comment: str) -> Path:
    """OpenSim Storage text: title, version, nRows, nColumns (time included), inDegrees, endheader, tab table."""
    lines = [title, "version=1", f"nRows={time_s.size}", f"nColumns={len(names) + 1}",
             f"inDegrees={'yes' if in_degrees else 'no'}", "", comment, "endheader", "\t".join(["time", *names])]
    body = np.hstack([time_s[:, None], data])
    lines += ["\t".join(f"{x:.8f}" if j == 0 else f"{x:.10g}" for j, x in enumerate(row)) for row in body]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def write_coordinates_mot(path: str | Path, time_s: np.ndarray, names: Sequence[str], coordinates: np.ndarray, *,
                          add_patella_beta: bool = True) -> Path:
    """Joint angles as an OpenSim motion: ``coordinates`` (N, n) in rad (rotations) and m (``*_tx/_ty/_tz``),
    written in degrees and metres."""
    names = list(names)
    t, q = _check_table(time_s, coordinates, names, f"coordinates for {Path(path).name}")
    q = q.copy()
    if add_patella_beta:
        for s in "lr":
            k, b = f"knee_angle_{s}", f"knee_angle_{s}_beta"
            if k in names and b not in names:
                q = np.hstack([q, q[:, [names.index(k)]]])
                names.append(b)
    rot = np.array([not n.endswith(_TRANSLATIONS + _COUPLED) for n in names])
    q[:, rot] = np.degrees(q[:, rot])
    return _write_table(Path(path), "Coordinates", t, q, names, True,
                        "Units are S.I. units (second, meters, Newtons, ...)\nAngles are in degrees.")


def write_foot_loads_mot(path: str | Path, time_s: np.ndarray, force_n: Mapping[str, np.ndarray],
                         cop_m: Mapping[str, np.ndarray], free_moment_nm: Mapping[str, np.ndarray]) -> Path:
    """Per-foot ground reaction (``side`` -> (N, 3) arrays in the z-up world: force N, centre of pressure m, free
    moment N m) as an OpenSim external-loads motion in ground axes (see the module docstring)."""
    t = np.asarray(time_s, dtype=float).ravel()
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for side, prefix in FOOT_LOAD_PREFIX.items():
        if side not in force_n:
            continue
        arrays = []
        for label, src in (("force_n", force_n), ("cop_m", cop_m), ("free_moment_nm", free_moment_nm)):
            a = np.asarray(src[side], dtype=float)
            if a.shape != (t.size, 3):
                raise ValueError(f"{label}[{side!r}]: shape {a.shape}, expected ({t.size}, 3)")
            arrays.append(a)
        F, P, T = arrays
        loaded = np.all(np.isfinite(F), axis=1) & np.all(np.isfinite(P), axis=1) & (np.abs(F).sum(axis=1) > 0)
        F = np.where(loaded[:, None], F, 0.0)
        P = np.where(loaded[:, None], P, 0.0)
        T = np.where(loaded[:, None], np.nan_to_num(T), 0.0)
        names += [f"{prefix}ground_force_v{a}" for a in "xyz"] + [f"{prefix}ground_force_p{a}" for a in "xyz"] \
            + [f"{prefix}ground_torque_{a}" for a in "xyz"]
        blocks += [z_up_to_opensim(F), z_up_to_opensim(P), z_up_to_opensim(T)]
    if not blocks:
        raise ValueError(f"force_n: no 'left' or 'right' foot among {sorted(force_n)}")
    t, d = _check_table(t, np.hstack(blocks), names, f"foot loads for {Path(path).name}")
    return _write_table(Path(path), Path(path).name, t, d, names, False,
                        "Ground reaction per foot in OpenSim ground (x forward, y up, z right): N, m, N*m")


def write_external_loads_xml(path: str | Path, datafile: str | Path, sides: Sequence[str] = ("left", "right")) -> Path:
    """OpenSim ``ExternalLoads``: one ``ExternalForce`` per foot of :func:`write_foot_loads_mot`'s file ``datafile``
    (written by its name when it sits beside ``path``, else by its absolute path)."""
    path, datafile = Path(path), Path(datafile)
    ref = datafile.name if datafile.resolve().parent == path.resolve().parent else str(datafile.resolve())
    forces = []
    for side in sides:
        if side not in FOOT_LOAD_PREFIX:
            raise ValueError(f"sides: {side!r} is not 'left' or 'right'")
        p = FOOT_LOAD_PREFIX[side]
        forces.append(f"""            <ExternalForce name="grf_{side}">
                <applied_to_body>{FOOT_BODY[side]}</applied_to_body>
                <force_expressed_in_body>ground</force_expressed_in_body>
                <point_expressed_in_body>ground</point_expressed_in_body>
                <force_identifier>{p}ground_force_v</force_identifier>
                <point_identifier>{p}ground_force_p</point_identifier>
                <torque_identifier>{p}ground_torque_</torque_identifier>
                <data_source_name>{escape(ref)}</data_source_name>
            </ExternalForce>""")
    text = f"""<?xml version="1.0" encoding="UTF-8" ?>
<OpenSimDocument Version="40000">
    <ExternalLoads name="external_loads">
        <objects>
{chr(10).join(forces)}
        </objects>
        <groups />
        <datafile>{escape(ref)}</datafile>
    </ExternalLoads>
</OpenSimDocument>
"""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_moments_sto(path: str | Path, time_s: np.ndarray, names: Sequence[str], moments: np.ndarray, *,
                      residual_force_n: np.ndarray | None = None, residual_moment_nm: np.ndarray | None = None,
                      skip: Sequence[str] = ("root_tx", "root_ty", "root_tz", "root_rx", "root_ry", "root_rz")) -> Path:
    """Net joint moments (N, n) as an OpenSim ``.sto`` named like InverseDynamicsTool's output; the free root's
    generalised forces (``skip``) are replaced by the residuals in ground axes when given."""
    names = list(names)
    keep = [j for j, n in enumerate(names) if n not in skip]
    cols = [f"{names[j]}_force" if names[j].endswith(_TRANSLATIONS) else f"{names[j]}_moment" for j in keep]
    data = np.asarray(moments, dtype=float)[:, keep]
    if residual_force_n is not None and residual_moment_nm is not None:
        cols += [f"pelvis_residual_force_{a}" for a in "xyz"] + [f"pelvis_residual_moment_{a}" for a in "xyz"]
        data = np.hstack([data, z_up_to_opensim(residual_force_n), z_up_to_opensim(residual_moment_nm)])
    t, d = _check_table(time_s, data, cols, f"joint moments for {Path(path).name}")
    return _write_table(Path(path), "Inverse Dynamics Generalized Forces", t, d, cols, False,
                        "Net joint moments (N*m) and forces (N); residuals in OpenSim ground axes")


def write_opensim_results(result, out_dir: str | Path) -> list[Path]:
    """A :class:`models.trial_analysis.TrialAnalysis` as ``joint_angles.mot``, ``grf.mot`` + ``external_loads.xml``
    and ``joint_moments.sto`` in ``out_dir``."""
    out = Path(out_dir)
    files = [write_coordinates_mot(out / "joint_angles.mot", result.time_s, result.coordinate_names, result.coordinates)]
    grf = write_foot_loads_mot(out / "grf.mot", result.time_s, result.foot_force_n, result.foot_cop_m,
                               result.foot_free_moment_nm)
    files += [grf, write_external_loads_xml(out / "external_loads.xml", grf,
                                            [s for s in FOOT_LOAD_PREFIX if s in result.foot_force_n])]
    files.append(write_moments_sto(out / "joint_moments.sto", result.time_s, result.moment_names, result.moments_nm,
                                   residual_force_n=result.residual_force_n,
                                   residual_moment_nm=result.residual_moment_nm))
    return files
