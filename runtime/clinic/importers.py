"""Import sessions analysed elsewhere: OpenSim result files and the shared trials' lab results.

OpenSim files (``.sto``/``.mot``, read with :mod:`models.io.lab_files`):

* inverse dynamics (``*_moment`` columns, N*m; generalized forces = internal moments along each coordinate):
  KEM from ``knee_angle_<s>_moment`` (internal extension = -moment when knee flexion is the positive direction
  of the coordinate, as in Rajagopal 2016 / GC5; +moment when flexion is negative, as in Gait2392: the caller
  says which), KAM from ``knee_adduction_<s>_moment`` where the model has that coordinate (external adduction =
  -moment; OpenSim names the positive direction); both in %BW*ht = 100*M/(m*g*h), g = 9.80665;
* joint reaction (``..knee_<s>_on_tibia_<s>_in_tibia_<s>_f{x,y,z}``, N): total knee contact force |F| in BW;
* static optimisation activations: the quadriceps-hamstrings co-contraction index (Rudolph 2000).

Peaks and impulses are taken per stance of the limb of interest: loaded intervals of a force plate in a GRF
file (vertical force >= 20 N), or given intervals, or (stated in the notes) the whole file.
Metrics an import cannot give stay NULL.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

G = 9.80665


def _table(path: str | Path):
    from models.io.storage import read_mot, read_sto

    p = Path(path)
    if p.suffix.lower() not in (".sto", ".mot"):
        raise ValueError(f"{p}: OpenSim results must be .sto or .mot, got {p.suffix!r}")
    return read_sto(p) if p.suffix.lower() == ".sto" else read_mot(p)


def stance_from_grf(grf_path: str | Path, plate: str, threshold_n: float = 20.0) -> list[tuple[float, float]]:
    """Loaded intervals (s) of force plate ``plate`` in an OpenSim GRF file (y-up vertical force >= threshold)."""
    from models.trial_analysis import force_plates

    table = _table(grf_path)
    ids = {k: f for k, f, _, _ in force_plates(table)}
    if str(plate) not in ids:
        raise ValueError(f"stance plate = {plate!r}: {grf_path} has plates {sorted(ids)}")
    fy = table.column(f"{ids[str(plate)]}y")
    loaded = fy >= threshold_n
    edges = np.flatnonzero(np.diff(np.r_[0, loaded.astype(int), 0]))
    t = table.time_s
    return [(float(t[a]), float(t[b - 1])) for a, b in zip(edges[::2], edges[1::2]) if b - a >= 2]


def _per_stance(t: np.ndarray, v: np.ndarray, stances: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    """(mean peak, mean trapezoidal impulse) of ``v`` over the stances that overlap the file's time range."""
    peaks, imps = [], []
    for a, b in stances:
        m = (t >= a - 1e-9) & (t <= b + 1e-9)
        if m.sum() >= 2:
            peaks.append(float(np.nanmax(v[m])))
            imps.append(float(np.trapezoid(v[m], t[m])))
    return (float(np.mean(peaks)) if peaks else None, float(np.mean(imps)) if imps else None)


@dataclass
class OpenSimImport:
    """What an import produced: metrics (None where not available), stance count, notes, files read."""

    metrics: dict[str, float | None]
    stances: int
    notes: list[str] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)   # (role, path)


def opensim_metrics(*, mass_kg: float, height_m: float, side: str, inverse_dynamics: str | Path | None = None,
                    knee_flexion_positive: bool | None = None, joint_reaction: str | Path | None = None,
                    so_activation: str | Path | None = None, stances: list[tuple[float, float]] | None = None
                    ) -> OpenSimImport:
    """Summary metrics from OpenSim result files of one trial (see the module docstring for conventions)."""
    if side not in ("left", "right"):
        raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
    if not (mass_kg and height_m):
        raise ValueError(f"mass_kg = {mass_kg!r}, height_m = {height_m!r}: both are needed to normalise")
    if inverse_dynamics is None and joint_reaction is None and so_activation is None:
        raise ValueError("nothing to import: give an inverse dynamics, joint reaction or static optimisation file")
    s = side[0]
    from runtime.clinic.schema import METRICS

    metrics: dict[str, float | None] = {k: None for k in METRICS}
    notes: list[str] = []
    files: list[tuple[str, str]] = []
    tables = {}
    for role, path in (("opensim_id", inverse_dynamics), ("opensim_jr", joint_reaction),
                       ("opensim_so_activation", so_activation)):
        if path is not None:
            tables[role] = _table(path)
            files.append((role, str(path)))
    if stances is None:
        t0 = min(float(tb.time_s[0]) for tb in tables.values())
        t1 = max(float(tb.time_s[-1]) for tb in tables.values())
        stances = [(t0, t1)]
        notes.append(f"no stance given: peaks and impulses over the whole file ({t0:.3f}-{t1:.3f} s)")
    bw_ht = mass_kg * G * height_m / 100.0
    if "opensim_id" in tables:
        tb = tables["opensim_id"]
        col = f"knee_angle_{s}_moment"
        if col not in tb.columns:
            raise ValueError(f"{inverse_dynamics}: no column {col!r} (OpenSim inverse dynamics output); "
                             f"columns: {list(tb.columns)[:10]}...")
        if knee_flexion_positive is None:
            raise ValueError("knee_flexion_positive is required with an inverse dynamics file: is knee flexion the "
                             "positive direction of knee_angle in the model (Rajagopal/GC5: yes; Gait2392: no)?")
        sign = -1.0 if knee_flexion_positive else 1.0
        kem = sign * tb.column(col) / bw_ht
        metrics["peak_kem_pct_bw_ht"], metrics["impulse_kem_pct_bw_ht_s"] = _per_stance(tb.time_s, kem, stances)
        add = f"knee_adduction_{s}_moment"
        if add in tb.columns:
            kam = -tb.column(add) / bw_ht
            metrics["peak_kam_pct_bw_ht"], metrics["impulse_kam_pct_bw_ht_s"] = _per_stance(tb.time_s, kam, stances)
        else:
            notes.append(f"{Path(inverse_dynamics).name}: no {add} column (the model has no knee adduction "
                         "coordinate): KAM not available")
    if "opensim_jr" in tables:
        tb = tables["opensim_jr"]
        pat = re.compile(rf"^(.*knee_{s}_on_tibia_{s}_in_tibia_{s})_f([xyz])$")
        prefixes = {m.group(1) for c in tb.columns if (m := pat.match(c))}
        if len(prefixes) != 1:
            raise ValueError(f"{joint_reaction}: expected one set of '*knee_{s}_on_tibia_{s}_in_tibia_{s}_f[xyz]' "
                             f"columns, found {sorted(prefixes) or 'none'}")
        pre = prefixes.pop()
        f = np.column_stack([tb.column(f"{pre}_f{a}") for a in "xyz"])
        total_bw = np.linalg.norm(f, axis=1) / (mass_kg * G)
        metrics["peak_kcf_total_bw"], _ = _per_stance(tb.time_s, total_bw, stances)
        notes.append(f"total knee contact force from OpenSim joint reaction {pre} (medial/lateral not available)")
    if "opensim_so_activation" in tables:
        from models.muscles.knee_contact import quadriceps_hamstrings_cocontraction

        tb = tables["opensim_so_activation"]
        cci = quadriceps_hamstrings_cocontraction(tb.data, tb.columns, side)
        m = np.zeros(tb.time_s.size, dtype=bool)
        for a, b in stances:
            m |= (tb.time_s >= a - 1e-9) & (tb.time_s <= b + 1e-9)
        metrics["cocontraction_index"] = float(np.nanmean(cci[m])) if m.any() else None
    return OpenSimImport(metrics, len(stances), notes, files)


def shared_lab_imports(data: Path) -> list[dict[str, Any]]:
    """The shared trials' own lab analyses that exist: PS ss1/3/8 OpenSim 3.3 static optimisation and joint
    reaction with the scaled Rajagopal model (Modenese et al. 2021), stance from force plate 1 (on the left
    foot, per ``PS_ngait_og_ss1_External_Forces.xml``). DM has no lab results beyond markers and plates (its
    sessions come from our analysis). Returns keyword sets for :func:`import_session`."""
    from runtime.clinic.batch import SHARED_SUBJECTS, SHARED_TASK

    g = Path(data) / "GC5_PS"
    code, mass, height, sex, affected = SHARED_SUBJECTS["PS"]
    out = []
    for n in (1, 3, 8):
        jr = g / "opensim_results_baseline" / "JR" / f"PS_ngait_og_ss{n}_JointReaction_ReactionLoads.sto"
        so = g / "opensim_results_baseline" / "SO" / f"PS_ngait_og_ss{n}_StaticOptimization_activation.sto"
        grf = g / "grf" / f"PS_ngait_og_ss{n}_kinetics.mot"
        if not (jr.is_file() and so.is_file() and grf.is_file()):
            continue
        extra = [("lab_ik", str(g / "ik" / f"PS_ngait_og_ss{n}_kinematics.mot")), ("grf", str(grf)),
                 ("opensim_model", str(g / "model" / "GC5.osim"))]
        out.append(dict(pseudonym=code, mass_kg=mass, height_m=height, sex=sex, affected_side=affected, side="left",
                        task=SHARED_TASK, trial_name=f"PS_ss{n}_opensim", joint_reaction=str(jr),
                        so_activation=str(so), grf=str(grf), stance_plate="1", extra_files=extra,
                        producer="OpenSim 3.3 static optimisation + joint reaction, Rajagopal 2015 model scaled to PS "
                                 "(Modenese et al. 2021, femoral-anteversion-paper @ ff2699b)"))
    return out


def import_session(store, *, pseudonym: str, mass_kg: float | None, height_m: float | None, side: str, task: str,
                   trial_name: str, sex: str = "unknown", affected_side: str = "none", session_date=None,
                   inverse_dynamics: str | None = None, knee_flexion_positive: bool | None = None,
                   joint_reaction: str | None = None, so_activation: str | None = None, grf: str | None = None,
                   stance_plate: str | None = None, stances: list[tuple[float, float]] | None = None,
                   extra_files: list[tuple[str, str]] | None = None, producer: str = "OpenSim") -> int:
    """Import one externally analysed session into ``store`` (source ``import``); returns the session id."""
    from runtime.clinic.metrics import software_version
    from runtime.clinic.store import FileRef, SessionRecord, SubjectInfo

    subject = SubjectInfo(pseudonym, mass_kg, height_m, sex, affected_side)
    subject.validate()                     # before any computation: a subject without mass is rejected here
    if grf is not None and stance_plate is not None and stances is None:
        stances = stance_from_grf(grf, stance_plate)
        if not stances:
            raise ValueError(f"{grf}: plate {stance_plate} is never loaded above 20 N: no stance")
    imp = opensim_metrics(mass_kg=float(mass_kg), height_m=float(height_m), side=side,
                          inverse_dynamics=inverse_dynamics, knee_flexion_positive=knee_flexion_positive,
                          joint_reaction=joint_reaction, so_activation=so_activation, stances=stances)
    primary = inverse_dynamics or joint_reaction or so_activation
    refs = [FileRef(role, path) for role, path in imp.files]
    refs += [FileRef(role, path) for role, path in (extra_files or []) if not any(r.path == path for r in refs)]
    if grf is not None and not any(r.path == grf for r in refs):
        refs.append(FileRef("grf", grf))
    rec = SessionRecord(subject=subject, task=task, source="import", trial_name=trial_name, side=side,
                        source_file=str(primary), session_date=session_date, metrics=imp.metrics, stances=imp.stances,
                        raw_files=refs, analysis={"imported": producer, "stance_s": [list(x) for x in (stances or [])],
                                                  "stance_plate": stance_plate},
                        software_version=software_version(), notes=imp.notes)
    return store.add_session(rec)
