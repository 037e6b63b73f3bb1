"""A stored subject calibration of MyoLeg's muscles: what it holds, where it lives, and applying it to a model.

The fit itself (against OpenSim's moment arms, operating lengths and force-length curves) is
:mod:`models.muscles.moment_arm_calibration`; this module only reads the versioned artefact
(``models/artifacts/subject_calibration_<stem>_<sha256[:12]>_<side>.json``, checked against the ``.osim`` file's
hash) and applies it in place, so that the analysis chain needs neither OpenSim nor the fitting code.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from models.muscles.subject_muscles import knee_crossing_muscles


def calibration_targets(side: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """``{muscle: (distal body names whose sites move, target coordinates)}`` for ``side``: the knee crossers
    inserting on the tibia or patella (two-joint ones keep their hip arms as targets too), psoas and iliacus."""
    s = side[0]
    knee, hip = f"knee_angle_{s}", (f"hip_flexion_{s}", f"hip_adduction_{s}")
    two_joint = {f"{m}_{s}" for m in ("recfem", "bflh", "semimem", "semiten", "sart", "grac", "tfl")}
    out: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for m in knee_crossing_muscles(side):
        if m.startswith(("gasmed", "gaslat")):
            continue                     # insert on the calcaneus: their knee arm is the femoral wrap's
        out[m] = ((f"tibia_{s}", f"patella_{s}"), (knee,) + (hip if m in two_joint else ()))
    for m in (f"psoas_{s}", f"iliacus_{s}"):
        out[m] = (("pelvis",), hip)      # the pelvic-brim points set their hip flexion arm
    return out


@dataclass
class SubjectCalibration:
    """Fitted site offsets ``{muscle: (dx, dy, dz) m}``, length ranges ``{muscle: (lo, hi) m}`` and force-length
    curves ``{muscle: (lmin, lmax, fpmax)}`` for one subject model (``osim_sha256``), with the RMS moment-arm error before / after per muscle and coordinate (m)."""

    osim_sha256: str
    side: str
    site_offsets_m: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    length_ranges_m: dict[str, tuple[float, float]] = field(default_factory=dict)
    curves: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    rms_before_m: dict[str, dict[str, float]] = field(default_factory=dict)
    rms_after_m: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self, path: str | Path) -> Path:
        """Write the calibration as JSON; returns the path."""
        p = Path(path)
        p.write_text(json.dumps(self.__dict__, indent=1, sort_keys=True))
        return p

    @classmethod
    def from_json(cls, path: str | Path) -> SubjectCalibration:
        """Read :meth:`to_json`'s file."""
        d = json.loads(Path(path).read_text())
        return cls(d["osim_sha256"], d["side"], {k: tuple(v) for k, v in d["site_offsets_m"].items()},
                   {k: tuple(v) for k, v in d["length_ranges_m"].items()},
                   {k: tuple(v) for k, v in d["curves"].items()}, d["rms_before_m"], d["rms_after_m"])


#: file digests per (resolved path, size, mtime_ns): the chain checks the same 2 MB ``.osim`` three times per trial
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _sha256(path: str | Path) -> str:
    """SHA-256 (hex) of the file's bytes, read once per file version (path, size and ``mtime_ns``, as
    :mod:`models.io.xml_cache`: a rewrite is seen; an edit keeping both the size and the nanosecond mtime is not)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), int(st.st_size), int(st.st_mtime_ns))
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS.setdefault(key, hashlib.sha256(p.read_bytes()).hexdigest())
    return digest


def clear_digest_cache() -> None:
    """Forget the file digests :func:`_sha256` keeps (the next check reads the file again)."""
    _DIGESTS.clear()


def _muscle_sites(m: mujoco.MjModel, muscle: str, bodies: Sequence[str]) -> list[int]:
    """Site ids of ``muscle``'s tendon path attached to ``bodies``."""
    body_ids = {m.body(b).id for b in bodies}
    t = int(m.actuator_trnid[m.actuator(muscle).id, 0])
    out = []
    for w in range(m.tendon_adr[t], m.tendon_adr[t] + m.tendon_num[t]):
        if int(m.wrap_type[w]) == int(mujoco.mjtWrap.mjWRAP_SITE) and m.site_bodyid[m.wrap_objid[w]] in body_ids:
            out.append(int(m.wrap_objid[w]))
    return out


def apply_calibration(m: mujoco.MjModel, cal: SubjectCalibration) -> None:
    """Apply ``cal``'s site offsets and length ranges to ``m`` in place (the model it was fitted for)."""
    targets = calibration_targets(cal.side)
    for n, off in cal.site_offsets_m.items():
        if n not in targets:
            raise KeyError(f"calibration muscle {n!r}: not a calibrated muscle of side {cal.side!r}")
        m.site_pos[_muscle_sites(m, n, targets[n][0])] += np.asarray(off, dtype=float)
    _apply_muscle_parameters(m, cal)


def _apply_muscle_parameters(m: mujoco.MjModel, cal: SubjectCalibration) -> None:
    for n, (lo, hi) in cal.length_ranges_m.items():
        if not (0 < lo < hi):
            raise ValueError(f"calibration length range of {n!r} = {(lo, hi)!r}: need 0 < lo < hi (m)")
        m.actuator_lengthrange[m.actuator(n).id] = (lo, hi)
    for n, (lmin, lmax, fpmax) in cal.curves.items():
        if not (0 <= lmin < 1 < lmax and fpmax >= 0):
            raise ValueError(f"calibration curve of {n!r} = {(lmin, lmax, fpmax)!r}: need 0 <= lmin < 1 < lmax, "
                             "fpmax >= 0")
        a = m.actuator(n).id
        for prm in (m.actuator_gainprm, m.actuator_biasprm):    # MuJoCo's muscle bias reads the same layout
            prm[a, 4], prm[a, 5], prm[a, 7] = lmin, lmax, fpmax


#: where versioned calibrations live (one JSON per subject model file and side, named with the file's hash)
ARTIFACT_DIR = Path(__file__).resolve().parents[1] / "artifacts"


def calibration_path(osim_path: str | Path, side: str, directory: str | Path = ARTIFACT_DIR) -> Path:
    """``<directory>/subject_calibration_<stem>_<sha256[:12]>_<side>.json`` for the model file ``osim_path``."""
    if side not in ("left", "right"):
        raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
    return Path(directory) / f"subject_calibration_{Path(osim_path).stem}_{_sha256(osim_path)[:12]}_{side}.json"


def load_calibration(osim_path: str | Path, side: str, directory: str | Path = ARTIFACT_DIR) -> SubjectCalibration | None:
    """The stored calibration of ``osim_path`` / ``side`` (checked against the file's hash), or ``None``."""
    p = calibration_path(osim_path, side, directory)
    if not p.exists():
        return None
    cal = SubjectCalibration.from_json(p)
    if cal.osim_sha256 != _sha256(osim_path) or cal.side != side:
        raise ValueError(f"{p}: made for another model file or side ({cal.osim_sha256[:12]}, {cal.side!r})")
    return cal
