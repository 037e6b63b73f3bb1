"""Ideal pinhole camera for model-based monocular fitting (no distortion: undistort pixels first).

Frames: world right-handed, z up, metres, floor at z = 0.  Camera (OpenCV): x image right, y image down,
z along the optical axis; ``X_cam = R_cw X_world + t_cw`` (the same convention as
``runtime.vision.calibration.CameraCalibration.rotation_cw`` / ``translation_cw_m``).  Pixels: origin at the
image's top-left corner, u right, v down, px.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PinholeCamera"]


@dataclass(frozen=True)
class PinholeCamera:
    """``K`` (3, 3) intrinsics, px; ``R_cw`` (3, 3) world -> camera rotation; ``t_cw`` (3,) m; validated."""

    K: np.ndarray
    R_cw: np.ndarray
    t_cw: np.ndarray

    def __post_init__(self) -> None:
        K = np.array(self.K, dtype=float)
        R = np.array(self.R_cw, dtype=float)
        t = np.array(self.t_cw, dtype=float).reshape(-1)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 \
                or not np.allclose(K[2], (0.0, 0.0, 1.0)) or K[1, 0] != 0.0:
            raise ValueError(f"PinholeCamera.K must be an upper-triangular (3, 3) intrinsic matrix with fx, fy > 0 "
                             f"and last row (0, 0, 1), got {self.K!r}")
        if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise ValueError(f"PinholeCamera.R_cw must be a proper (3, 3) rotation, got {self.R_cw!r}")
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ValueError(f"PinholeCamera.t_cw must be 3 finite numbers (m), got {self.t_cw!r}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "R_cw", R)
        object.__setattr__(self, "t_cw", t)

    @classmethod
    def from_calibration(cls, cal: Any) -> "PinholeCamera":
        """From an object with ``K``, ``rotation_cw`` and ``translation_cw_m`` (e.g. a
        ``runtime.vision.calibration.CameraCalibration``; its distortion is ignored: undistort pixels first)."""
        return cls(cal.K, cal.rotation_cw, cal.translation_cw_m)

    @classmethod
    def look_at(cls, f_px: float, image_size: tuple[int, int], centre_w: np.ndarray, target_w: np.ndarray) -> "PinholeCamera":
        """A level camera (image x horizontal) at ``centre_w`` looking at ``target_w`` (world, m), focal ``f_px``
        px, principal point at the image centre of ``image_size`` = (width, height) px."""
        c = np.asarray(centre_w, dtype=float)
        fwd = np.asarray(target_w, dtype=float) - c
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, (0.0, 0.0, 1.0))
        if np.linalg.norm(right) < 1e-6:
            raise ValueError("look_at: the viewing direction is vertical; the image x axis is undefined")
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        R = np.stack([right, down, fwd])
        K = np.array([[f_px, 0.0, image_size[0] / 2.0], [0.0, f_px, image_size[1] / 2.0], [0.0, 0.0, 1.0]])
        return cls(K, R, -R @ c)

    @property
    def centre_w(self) -> np.ndarray:
        """Camera centre in the world, m."""
        return -self.R_cw.T @ self.t_cw

    def to_camera(self, points_w: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> camera frame, m."""
        return np.asarray(points_w) @ self.R_cw.T + self.t_cw

    def project(self, points_w: np.ndarray) -> np.ndarray:
        """(..., 3) world points, m -> (..., 2) pixels (NaN behind the camera)."""
        pc = self.to_camera(points_w)
        z = pc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(z > 0, pc[..., 0] / z, np.nan)
            y = np.where(z > 0, pc[..., 1] / z, np.nan)
        K = self.K
        return np.stack([K[0, 0] * x + K[0, 1] * y + K[0, 2], K[1, 1] * y + K[1, 2]], axis=-1)

    def project_jacobian(self, points_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (M, 2) and d(pixel)/d(world point) (M, 2, 3), px/m, of (M, 3) world points."""
        pc = self.to_camera(points_w)
        z = pc[:, 2]
        iz = 1.0 / z
        x, y = pc[:, 0] * iz, pc[:, 1] * iz
        K = self.K
        uv = np.stack([K[0, 0] * x + K[0, 1] * y + K[0, 2], K[1, 1] * y + K[1, 2]], axis=-1)
        # d(x, y)/d(pc): [[1/z, 0, -x/z], [0, 1/z, -y/z]]
        dn = np.zeros((len(z), 2, 3))
        dn[:, 0, 0] = iz
        dn[:, 0, 2] = -x * iz
        dn[:, 1, 1] = iz
        dn[:, 1, 2] = -y * iz
        dpix = np.einsum("ab,mbc->mac", K[:2, :2], dn)
        return uv, dpix @ self.R_cw

    def down_direction(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) unit image direction in which a world point seen at pixel ``uv`` moves when lowered along
        -z (independent of its depth: the image motion of a camera-frame displacement d at normalised
        coordinates (x, y) is proportional to (d_x - x d_z, d_y - y d_z))."""
        uv = np.asarray(uv, dtype=float)
        Ki = np.linalg.inv(self.K)
        x = Ki[0, 0] * uv[..., 0] + Ki[0, 1] * uv[..., 1] + Ki[0, 2]
        y = Ki[1, 1] * uv[..., 1] + Ki[1, 2]
        d = -self.R_cw[:, 2]
        dn = np.stack([d[0] - x * d[2], d[1] - y * d[2]], axis=-1)
        dp = dn @ self.K[:2, :2].T
        return dp / np.linalg.norm(dp, axis=-1, keepdims=True)
