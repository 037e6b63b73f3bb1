"""The reference paths that the fast subject-input code replaced (kept for the equality tests and the benchmark):
the per-frame free-root loop of the OpenSim -> MuJoCo state map, and the row-by-row ``.trc`` data parse."""
from __future__ import annotations

import math
from pathlib import Path

import mujoco
import numpy as np

from models.dynamics.opensim_state import OPENSIM_TO_Z_UP, MappedKinematics, OpenSimStateMap, _pelvis_angular
from models.io import trc as trc_mod
from models.io.reader_support import read_lines


def _rot(axis: int, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def reference_map(sm: OpenSimStateMap, values: np.ndarray, speeds: np.ndarray,
                  accelerations: np.ndarray) -> MappedKinematics:
    """``OpenSimStateMap.map`` as it was: the free root one frame at a time (``mju_mat2Quat`` per frame)."""
    m = sm.model
    n = values.shape[0]
    qpos = np.tile(np.asarray(m.qpos0, dtype=float), (n, 1))
    qvel, qacc = np.zeros((n, m.nv)), np.zeros((n, m.nv))
    qpos[:, sm._qadr] = values[:, sm._cols]
    qvel[:, sm._dadr] = speeds[:, sm._cols]
    qacc[:, sm._dadr] = accelerations[:, sm._cols]
    ia, ib, ic, it = sm._ia, sm._ib, sm._ic, sm._it
    R_rp, r_rp, qa, da = sm._R_rp, sm._r_rp, sm._qa, sm._da
    w_p, al_p = _pelvis_angular(values[:, ia], values[:, ib], values[:, ic], speeds[:, ia], speeds[:, ib],
                                speeds[:, ic], accelerations[:, ia], accelerations[:, ib], accelerations[:, ic])
    C = OPENSIM_TO_Z_UP
    p_p, v_p, a_p = values[:, it] @ C.T, speeds[:, it] @ C.T, accelerations[:, it] @ C.T
    quat = np.zeros(4)
    for k in range(n):
        R_wr = C @ (_rot(2, values[k, ia]) @ _rot(0, values[k, ib]) @ _rot(1, values[k, ic])) @ R_rp.T
        mujoco.mju_mat2Quat(quat, R_wr.ravel())
        dvec = R_wr @ r_rp
        w_r, al_r = R_rp @ w_p[k], R_rp @ al_p[k]
        w_w, al_w = R_wr @ w_r, R_wr @ al_r
        qpos[k, qa:qa + 3] = p_p[k] - dvec
        qpos[k, qa + 3:qa + 7] = quat
        qvel[k, da:da + 3] = v_p[k] - np.cross(w_w, dvec)
        qvel[k, da + 3:da + 6] = w_r
        qacc[k, da:da + 3] = a_p[k] - np.cross(al_w, dvec) - np.cross(w_w, np.cross(w_w, dvec))
        qacc[k, da + 3:da + 6] = al_r
    sm.couplings.apply(qpos, qvel, qacc)
    return MappedKinematics(qpos, qvel, qacc, sm.used_columns, sm.ignored_columns, sm.defaulted_joints,
                            tuple(sm.couplings.dependent_joint_names))


def trc_rows_reference(path: str | Path, width: int) -> np.ndarray:
    """Every ``.trc`` data line through ``_parse_row`` one by one (padding, trimming, checks), as read_trc did."""
    lines = read_lines(Path(path))
    names = tuple(f"m{i}" for i in range((width - 2) // 3))
    rows = [trc_mod._parse_row(lines[i].rstrip("\r\n"), i + 1, names, width, str(path))
            for i in range(5, len(lines)) if lines[i].strip()]
    return np.asarray(rows, dtype=float)


def data_block_rows(lines: list[str], names: tuple[str, ...], width: int, where: str) -> tuple[np.ndarray, list[int]]:
    """``trc._data_block`` as it was: every data row through ``_parse_row`` (for the benchmark's reference)."""
    rows, line_numbers = [], []
    for idx in range(5, len(lines)):
        raw = lines[idx].rstrip("\r\n")
        if raw.strip():
            rows.append(trc_mod._parse_row(raw, idx + 1, names, width, where))
            line_numbers.append(idx + 1)
    return np.asarray(rows, dtype=float).reshape(len(rows), width), line_numbers
