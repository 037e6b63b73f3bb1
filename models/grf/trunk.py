"""Trunk orientation from torso markers: the lumbar angles the ground reaction estimate needs for MyoLeg's rigid
upper body (:mod:`models.grf.body`), which the leg-and-pelvis IK does not solve.

MyoLeg's upper body (29.7 kg of 75: lumbar vertebrae, torso with the arms lumped in, head) is welded to the pelvis
and the marker IK leaves the torso markers out (``models.body.markerset``: a welded torso would only bias the
pelvis).  So the whole-body COM of the kinematics-only GRF ignores the trunk's own motion: on the PS trials its
medio-lateral force in single support is then off by 3.6-5.2 %BW on average (RMS 7.6-9.4 %BW) against the plates
(scaled to the recorded mass), 1.1-1.7 (RMS 2.6-3.0) with the lab IK's lumbar angles.  This module gives the same
angles from our own data: per frame, the rotation about the L5/S1 joint (the ``lumbar5`` origin, in the pelvis
frame of the IK pose) that carries the torso markers' model positions (lumbar angles 0) onto the measured ones,
by the Kabsch / orthogonal Procrustes fit of the centred point sets (Kabsch 1976, Acta Cryst A32:922; centring
makes it insensitive to a translation misfit of the scaled torso), decomposed as ``Rz(ext) Rx(bend) Ry(rot)``
(Rajagopal's ``back`` joint, :func:`models.grf.body.rot_zxy`).  Frames with fewer than 3 torso markers are filled
linearly in time from their neighbours.  World frame z up, SI units, angles in rad.  Pure computation.

What the GRF estimate is given (:func:`lumbar_for_grf`): the thorax markers only (sternum, xiphoid, neck/C7,
thoracic and lumbar spine: the shoulder markers move with the shoulder girdle), and the bending and rotation per
frame with the extension held at its trial median.  Chosen on both shared subjects (in sample, no held-out split):
with the extension's frame-to-frame motion the sagittal angular-momentum rate it adds pulls the double-support
split the wrong way (PS, against the plates with their scale and lag taken out, :mod:`models.grf.plate_check`:
vertical RMSE 6.1 / 10.1 / 7.0 %BW with it, 6.0 / 6.6 / 4.0 without; DM 8.2 / 5.5 / 5.2 / 6.1 / 6.6 with,
7.1 / 3.7 / 3.8 / 4.2 / 5.4 without); the KAM RMSE is the same either way (PS 0.5-0.6, DM 0.74-1.0 %BW ht).
"""

from __future__ import annotations

import mujoco
import numpy as np

from models.grf.fk import BodyTree, body_frames, supported

__all__ = ["TORSO_BODY", "TrunkTracker", "lumbar_angles_from_markers", "lumbar_for_grf", "thorax_markers", "zxy_angles"]

#: The MyoLeg body the torso markers are attached to (child of the welded ``lumbar5`` subtree).
TORSO_BODY = "torso"


def zxy_angles(R: np.ndarray) -> np.ndarray:
    """Angles ``(e, b, r)`` (rad) of a rotation ``R = Rz(e) Rx(b) Ry(r)`` (..., 3, 3), ``|b| <= pi/2``."""
    R = np.asarray(R, float)
    b = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    e = np.arctan2(-R[..., 0, 1], R[..., 1, 1])
    r = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    return np.stack([e, b, r], axis=-1)


def _kabsch(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotation R (3, 3) minimising sum |R (u_i - u_bar) - (v_i - v_bar)|^2 for point sets (M, 3)."""
    uc = u - u.mean(axis=0)
    vc = v - v.mean(axis=0)
    U, _, Vt = np.linalg.svd(uc.T @ vc)
    d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
    return Vt.T @ np.diag([1.0, 1.0, d]) @ U.T


def _kabsch_batch(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:func:`_kabsch` of every frame (R, M, 3) at once, over the markers with weight ``w`` (R, M) = 1 (0: left
    out); (R, 3, 3)."""
    cnt = w.sum(axis=1)[:, None, None]
    wu = w[..., None]
    uc = (u - (wu * u).sum(axis=1, keepdims=True) / cnt) * wu
    vc = (v - (wu * v).sum(axis=1, keepdims=True) / cnt) * wu
    U, _, Vt = np.linalg.svd(np.swapaxes(uc, 1, 2) @ vc)
    V, Ut = np.swapaxes(Vt, 1, 2), np.swapaxes(U, 1, 2)
    d = np.sign(np.linalg.det(V @ Ut))
    d[d == 0] = 1.0
    V[:, :, 2] *= d[:, None]
    return V @ Ut


def _body_frames(model: mujoco.MjModel, q: np.ndarray, rows: np.ndarray, bodies: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Body positions (R, B, 3) and rotations (R, B, 9) of ``bodies`` at the frames ``rows`` of ``q``: one compiled
    pass (:func:`models.grf.fk.body_frames`) where the model allows, else ``mj_kinematics`` frame by frame."""
    if supported(model)[0]:
        e = np.zeros(0, np.int64)
        _, _, _, ep, em = body_frames(BodyTree(model), q, rows, e, e, np.zeros((0, 3)), bodies)
        return ep[rows], em[rows]
    d = mujoco.MjData(model)
    ep, em = np.empty((rows.size, bodies.size, 3)), np.empty((rows.size, bodies.size, 9))
    for i, k in enumerate(rows):
        d.qpos[:] = q[k]
        mujoco.mj_kinematics(model, d)
        ep[i], em[i] = d.xpos[bodies], d.xmat[bodies]
    return ep, em


def lumbar_angles_from_markers(model: mujoco.MjModel, qpos: np.ndarray, markers_m: np.ndarray,
                               offsets_m: np.ndarray, *, trunk_body: str = "lumbar5", pelvis_body: str = "pelvis",
                               torso_body: str = TORSO_BODY) -> np.ndarray:
    """Lumbar angles (N, 3) rad (extension, bending, rotation) from the IK poses ``qpos`` (N, nq) and the measured
    torso markers ``markers_m`` (N, M, 3), world frame z up (NaN = missing), whose offsets in the ``torso_body``
    frame are ``offsets_m`` (M, 3).  Raises ``ValueError`` when fewer than 3 markers are given or no frame has 3."""
    q = np.asarray(qpos, float)
    mk = np.asarray(markers_m, float)
    off = np.asarray(offsets_m, float)
    if mk.ndim != 3 or mk.shape[0] != q.shape[0] or mk.shape[2] != 3 or off.shape != (mk.shape[1], 3):
        raise ValueError(f"markers_m must be (N, M, 3) with N = {q.shape[0]} and offsets_m (M, 3); got "
                         f"{mk.shape} and {off.shape}")
    if mk.shape[1] < 3:
        raise ValueError(f"torso markers: need at least 3 to fix the trunk's orientation, got {mk.shape[1]}")
    ids = {}
    for name in (trunk_body, pelvis_body, torso_body):
        ids[name] = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        if ids[name] < 0:
            raise ValueError(f"body {name!r}: not in the model")
    n = q.shape[0]
    ok = np.all(np.isfinite(mk), axis=2)                                      # (N, M)
    rows = np.flatnonzero((ok.sum(axis=1) >= 3) & np.all(np.isfinite(q), axis=1))
    bid = np.array([ids[trunk_body], ids[pelvis_body], ids[torso_body]])
    ang = np.full((n, 3), np.nan)
    if rows.size:
        ep, em = _body_frames(model, q, rows, bid)
        j = ep[:, 0]
        Rp = em[:, 1].reshape(-1, 3, 3)
        Rt = em[:, 2].reshape(-1, 3, 3)
        neutral = ep[:, 2][:, None, :] + np.einsum("mj,rij->rmi", off, Rt)
        u = (neutral - j[:, None, :]) @ Rp                                    # pelvis frame, relative to L5/S1
        v = (np.where(ok[rows][..., None], mk[rows], 0.0) - j[:, None, :]) @ Rp
        ang[rows] = zxy_angles(_kabsch_batch(u, v, ok[rows].astype(float)))
    good = np.all(np.isfinite(ang), axis=1)
    if not good.any():
        raise ValueError("torso markers: no frame has 3 of them")
    t = np.arange(n)
    for a in range(3):
        ang[~good, a] = np.interp(t[~good], t[good], ang[good, a])
    return ang


def thorax_markers(names: tuple[str, ...] | list[str], bodies: tuple[str, ...] | list[str],
                   torso_body: str = TORSO_BODY) -> list[int]:
    """Indices of the markers on ``torso_body`` except the shoulder markers (name containing ``shoulder``, any
    case: acromion markers move with the shoulder girdle, not the thorax)."""
    return [i for i, (n, b) in enumerate(zip(names, bodies)) if b == torso_body and "shoulder" not in n.lower()]


def lumbar_for_grf(model: mujoco.MjModel, qpos: np.ndarray, markers_m: np.ndarray, offsets_m: np.ndarray,
                   **kw: str) -> np.ndarray:
    """The lumbar angles (N, 3) rad given to the GRF estimate: :func:`lumbar_angles_from_markers` of the thorax
    markers with the extension held at its trial median (module doc: why)."""
    ang = lumbar_angles_from_markers(model, qpos, markers_m, offsets_m, **kw)
    ang[:, 0] = np.median(ang[:, 0])
    return ang


class TrunkTracker:
    """The same lumbar angles one frame at a time, causally (for a live chain): bending and rotation of the frame,
    extension an exponential moving average with time constant ``extension_tau_s`` (s) in place of the trial median;
    a frame with fewer than 3 markers (or NaN pose) repeats the last angles (NaN before the first good frame).
    ``offsets_m`` (M, 3): the markers' offsets in the torso frame, in the order :meth:`step` gets them."""

    def __init__(self, model: mujoco.MjModel, offsets_m: np.ndarray, rate_hz: float, *,
                 extension_tau_s: float = 2.0, trunk_body: str = "lumbar5", pelvis_body: str = "pelvis",
                 torso_body: str = TORSO_BODY) -> None:
        self.off = np.asarray(offsets_m, float)
        if self.off.ndim != 2 or self.off.shape[1] != 3 or self.off.shape[0] < 3:
            raise ValueError(f"offsets_m must be (M >= 3, 3), got {self.off.shape}")
        if not (np.isfinite(rate_hz) and rate_hz > 0 and np.isfinite(extension_tau_s) and extension_tau_s > 0):
            raise ValueError(f"rate_hz and extension_tau_s must be finite and > 0, got {rate_hz!r}, {extension_tau_s!r}")
        self.model = model
        self.data = mujoco.MjData(model)
        self.ids = []
        for name in (trunk_body, pelvis_body, torso_body):
            i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
            if i < 0:
                raise ValueError(f"body {name!r}: not in the model")
            self.ids.append(i)
        self.alpha = 1.0 - float(np.exp(-1.0 / (rate_hz * extension_tau_s)))
        self.angles = np.full(3, np.nan)
        self._ext: float | None = None

    def reset(self) -> None:
        self.angles[:] = np.nan
        self._ext = None

    def step(self, qpos: np.ndarray, markers_m: np.ndarray) -> np.ndarray:
        """Lumbar angles (3,) rad of one frame from its pose (nq,) and markers (M, 3), world z up (NaN = missing);
        the returned array is this object's buffer."""
        mk = np.asarray(markers_m, float)
        ok = np.all(np.isfinite(mk), axis=1)
        if ok.sum() < 3 or not np.all(np.isfinite(qpos)):
            return self.angles
        d = self.data
        d.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, d)
        jb, pb, tb = self.ids
        Rp = d.xmat[pb].reshape(3, 3)
        j = d.xpos[jb]
        neutral = d.xpos[tb] + self.off[ok] @ d.xmat[tb].reshape(3, 3).T
        a = zxy_angles(_kabsch((neutral - j) @ Rp, (mk[ok] - j) @ Rp))
        self._ext = float(a[0]) if self._ext is None else self._ext + self.alpha * (float(a[0]) - self._ext)
        self.angles[0] = self._ext
        self.angles[1:] = a[1:]
        return self.angles
