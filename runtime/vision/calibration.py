"""Camera calibration: pinhole intrinsics with OpenCV's distortion model, and extrinsics.

Conventions (every :class:`CameraCalibration`):

* Camera frame: OpenCV's, x right, y down, z forward (along the optical axis), metres.
* ``rotation_cw`` (3, 3) and ``translation_cw_m`` (3,) map a world point to the camera frame:
  ``X_cam = R_cw X_world + t_cw``. The camera centre in the world is ``-R_cw^T t_cw`` and
  ``rotation_wc = R_cw^T`` (world <- camera) holds the camera axes as its columns.
* Intrinsics ``K`` in pixels (x right, y down, origin at the top-left pixel's corner as OpenCV);
  ``distortion`` = OpenCV ``(k1, k2, p1, p2, k3)`` applied to normalised coordinates ``X/Z, Y/Z``.
* World frame: whatever the calibration file uses (the pose2sim Qualisys lab: metres, z up).

Sources:

* :func:`guess_intrinsics`: no calibration. Focal length from the image width and an assumed
  horizontal field of view (default :data:`DEFAULT_HFOV_DEG` = 60 deg, a typical phone or webcam
  main camera in the 55-70 deg range; state it next to every result that uses it), principal point
  at the image centre, no distortion, camera at the world origin looking along +z.
* :func:`read_qca`: Qualisys ``.qca.txt`` (XML), as shipped by the pose2sim demo. Units there:
  ``transform x/y/z`` are the camera centre in the world, **millimetres**; ``r11..r33`` are read
  row-wise into a matrix whose rows are the Qualisys camera axes in the world (world -> camera
  rotation); the Qualisys camera looks along its -z with y up, so OpenCV's camera is that frame
  rotated by pi about x (y and z flipped). ``focalLength*`` and ``centerPoint*`` are in sensor
  sub-pixels, **1/64 pixel**; the centre is relative to the sensor, so the video window's
  ``fov_video`` left/top are subtracted. Image size = ``fov_video`` right - left + 1 by
  bottom - top + 1. Distortion: ``radialDistortion1..3`` and ``tangentalDistortion1..2`` are the
  Brown-Conrady coefficients on normalised coordinates, mapped to OpenCV's ``k1, k2, k3, p1, p2``
  (pose2sim's converter divides them by 64, which all but removes them; both readings are
  available. Measured on the demo's four views with BlazePose landmarks, 100 frames: median
  reprojection 13.78 px with the coefficients as they are, 13.79 px divided by 64, i.e. the lens
  distortion is far below the landmark noise there; the default keeps the file's values).
* :func:`read_toml`: Pose2Sim / Sports2D ``Calib*.toml``: one table per camera with ``size``
  ``[w, h]`` px, ``matrix`` (K), ``distortions`` ``[k1, k2, p1, p2]``, ``rotation`` (Rodrigues
  vector, world -> camera), ``translation`` (m), ``fisheye`` (must be false).
"""
from __future__ import annotations

import math
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "DEFAULT_HFOV_DEG",
    "CameraCalibration",
    "guess_intrinsics",
    "read_qca",
    "read_toml",
    "read_calibration",
    "rodrigues_to_matrix",
]

#: Horizontal field of view assumed when a camera is not calibrated (deg).
DEFAULT_HFOV_DEG = 60.0

# Qualisys camera (x right, y up, looking along -z) -> OpenCV camera (x right, y down, z forward)
_QCA_TO_CV = np.diag([1.0, -1.0, -1.0])


def rodrigues_to_matrix(rvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a Rodrigues (axis * angle, rad) vector."""
    r = np.asarray(rvec, dtype=float).reshape(3)
    th = float(np.linalg.norm(r))
    if th < 1e-15:
        return np.eye(3)
    k = r / th
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(th) * kx + (1.0 - math.cos(th)) * (kx @ kx)


@dataclass(frozen=True, eq=False)
class CameraCalibration:
    """One calibrated (or guessed) camera; see the module docstring for frames and units."""

    name: str
    image_size: tuple[int, int]            # (width, height), px
    K: np.ndarray                          # (3, 3) px
    distortion: np.ndarray                 # (5,) OpenCV k1, k2, p1, p2, k3
    rotation_cw: np.ndarray                # (3, 3) world -> camera
    translation_cw_m: np.ndarray           # (3,) m
    source: str = ""
    assumption: str = ""                   # what was assumed rather than measured ("" when calibrated)

    def __post_init__(self) -> None:
        K = np.array(self.K, dtype=float)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"camera {self.name!r}: K must be a finite 3x3 with positive focal lengths, got {self.K!r}")
        d = np.zeros(5)
        dd = np.asarray(self.distortion, dtype=float).reshape(-1)
        if dd.size not in (4, 5) or not np.all(np.isfinite(dd)):
            raise ValueError(f"camera {self.name!r}: distortion must be 4 or 5 finite numbers, got {self.distortion!r}")
        d[: dd.size] = dd
        R = np.array(self.rotation_cw, dtype=float)
        if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise ValueError(f"camera {self.name!r}: rotation_cw must be a proper rotation, got {self.rotation_cw!r}")
        t = np.array(self.translation_cw_m, dtype=float).reshape(-1)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ValueError(f"camera {self.name!r}: translation_cw_m must be 3 finite numbers, got {self.translation_cw_m!r}")
        w, h = (int(v) for v in self.image_size)
        if w <= 0 or h <= 0:
            raise ValueError(f"camera {self.name!r}: image_size must be positive (w, h), got {self.image_size!r}")
        for k, v in (("K", K), ("distortion", d), ("rotation_cw", R), ("translation_cw_m", t)):
            v.setflags(write=False)
            object.__setattr__(self, k, v)
        object.__setattr__(self, "image_size", (w, h))

    # -- derived -------------------------------------------------------------------------------
    @property
    def rotation_wc(self) -> np.ndarray:
        """(3, 3) camera -> world (columns: camera x, y, z axes in the world)."""
        return self.rotation_cw.T

    @property
    def center_world_m(self) -> np.ndarray:
        """(3,) camera centre in the world, m."""
        return -self.rotation_cw.T @ self.translation_cw_m

    @property
    def optical_axis_world(self) -> np.ndarray:
        """(3,) unit viewing direction (camera +z) in the world."""
        return self.rotation_cw[2].copy()

    @property
    def projection_matrix(self) -> np.ndarray:
        """(3, 4) ``P = K [R | t]`` for undistorted pixels."""
        return self.K @ np.hstack([self.rotation_cw, self.translation_cw_m[:, None]])

    @property
    def hfov_deg(self) -> float:
        """Horizontal field of view implied by K and the image width (deg)."""
        return math.degrees(2.0 * math.atan(0.5 * self.image_size[0] / self.K[0, 0]))

    # -- geometry ------------------------------------------------------------------------------
    def world_to_camera(self, points_w: np.ndarray) -> np.ndarray:
        """(..., 3) world points (m) -> camera frame (m)."""
        p = np.asarray(points_w, dtype=float)
        return p @ self.rotation_cw.T + self.translation_cw_m

    def camera_to_world(self, points_c: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points (m) -> world (m)."""
        p = np.asarray(points_c, dtype=float)
        return (p - self.translation_cw_m) @ self.rotation_cw

    def distort_normalized(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) ideal normalised coordinates -> distorted normalised coordinates (OpenCV model)."""
        k1, k2, p1, p2, k3 = self.distortion
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=-1)

    def project(self, points_w: np.ndarray, *, distort: bool = True) -> np.ndarray:
        """(..., 3) world points -> (..., 2) pixels (NaN behind the camera)."""
        pc = self.world_to_camera(points_w)
        z = pc[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            xy = pc[..., :2] / z[..., None]
        if distort and np.any(self.distortion != 0):
            xy = self.distort_normalized(xy)
        uv = xy @ self.K[:2, :2].T + self.K[:2, 2]
        uv[z <= 0] = np.nan
        return uv

    def undistort_pixels(self, uv: np.ndarray, iterations: int = 20) -> np.ndarray:
        """(..., 2) distorted pixels -> the pixels an ideal pinhole camera with the same K would see.

        Fixed-point inversion of the distortion (as OpenCV's ``undistortPoints``), ``iterations`` rounds;
        converges to < 1e-6 px for the mild lenses here (checked against ``cv2.undistortPoints`` in the tests).
        """
        uv = np.asarray(uv, dtype=float)
        if not np.any(self.distortion != 0):
            return uv.copy()
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        s = self.K[0, 1]
        yd = (uv[..., 1] - cy) / fy
        xd = (uv[..., 0] - cx - s * yd) / fx
        k1, k2, p1, p2, k3 = self.distortion
        x, y = xd.copy(), yd.copy()
        for _ in range(iterations):
            r2 = x * x + y * y
            radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
            dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
            x = (xd - dx) / radial
            y = (yd - dy) / radial
        return np.stack([fx * x + s * y + cx, fy * y + cy], axis=-1)

    def pixel_rays_camera(self, uv: np.ndarray, *, undistort: bool = True) -> np.ndarray:
        """(..., 2) pixels -> (..., 3) ray directions in the camera frame with z = 1."""
        u = self.undistort_pixels(uv) if undistort else np.asarray(uv, dtype=float)
        Kinv = np.linalg.inv(self.K)
        h = np.concatenate([u, np.ones(u.shape[:-1] + (1,))], axis=-1)
        return h @ Kinv.T


def _positive(name: str, v: float) -> float:
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return v


def guess_intrinsics(width_px: int, height_px: int, hfov_deg: float = DEFAULT_HFOV_DEG,
                     name: str = "camera") -> CameraCalibration:
    """An uncalibrated camera: ``fx = fy = (width / 2) / tan(hfov / 2)``, principal point at the image
    centre ``((w - 1) / 2, (h - 1) / 2)``, no distortion, camera frame = world frame. ``hfov_deg`` is an
    assumption (default 60 deg) recorded in :attr:`CameraCalibration.assumption`."""
    w, h = int(width_px), int(height_px)
    if w != width_px or w <= 0:
        raise ValueError(f"width_px must be a positive integer, got {width_px!r}")
    if h != height_px or h <= 0:
        raise ValueError(f"height_px must be a positive integer, got {height_px!r}")
    fov = _positive("hfov_deg", hfov_deg)
    if not 1.0 <= fov <= 170.0:
        raise ValueError(f"hfov_deg must lie in 1..170 deg for a pinhole camera, got {hfov_deg!r}")
    f = 0.5 * w / math.tan(math.radians(fov) / 2.0)
    K = np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
    return CameraCalibration(name, (w, h), K, np.zeros(5), np.eye(3), np.zeros(3), source="guess_intrinsics",
                             assumption=f"uncalibrated: horizontal field of view assumed {fov:g} deg, "
                                        "principal point at the image centre, no distortion")


def _attr(el: ET.Element, key: str, where: str) -> float:
    raw = el.get(key)
    if raw is None:
        raise ValueError(f"{where}: attribute {key!r} missing in <{el.tag}>")
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"{where}: attribute {key}={raw!r} in <{el.tag}> is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: attribute {key}={raw!r} in <{el.tag}> is not finite")
    return v


QcaDistortion = Literal["normalized", "pose2sim", "none"]


def read_qca(path: str | Path, *, distortion: QcaDistortion = "normalized") -> list[CameraCalibration]:
    """Cameras of a Qualisys ``.qca.txt`` file, sorted by serial (see the module docstring for units).

    ``distortion``: ``"normalized"`` (the file's coefficients as Brown-Conrady on normalised
    coordinates), ``"pose2sim"`` (divided by 64 as pose2sim's converter does) or ``"none"``.
    """
    p = Path(path)
    if distortion not in ("normalized", "pose2sim", "none"):
        raise ValueError(f"distortion = {distortion!r}: allowed 'normalized', 'pose2sim', 'none'")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{p}: not valid XML ({exc})") from None
    cams = root.findall("cameras/camera")
    if not cams:
        raise ValueError(f"{p}: no <cameras><camera> elements (not a Qualisys calibration)")
    out = []
    for cam in cams:
        serial = cam.get("serial") or f"cam{len(out) + 1:02d}"
        where = f"{p.name} camera {serial!r}"
        fov = cam.find("fov_video")
        tr = cam.find("transform")
        intr = cam.find("intrinsic")
        for tag, el in (("fov_video", fov), ("transform", tr), ("intrinsic", intr)):
            if el is None:
                raise ValueError(f"{where}: <{tag}> missing")
        left, top = _attr(fov, "left", where), _attr(fov, "top", where)
        w = int(round(_attr(fov, "right", where) - left + 1))
        h = int(round(_attr(fov, "bottom", where) - top + 1))
        fu, fv = _attr(intr, "focalLengthU", where) / 64.0, _attr(intr, "focalLengthV", where) / 64.0
        cu = _attr(intr, "centerPointU", where) / 64.0 - left
        cv = _attr(intr, "centerPointV", where) / 64.0 - top
        skew = float(intr.get("skew", "0") or 0.0)
        K = np.array([[fu, skew, cu], [0.0, fv, cv], [0.0, 0.0, 1.0]])
        k1, k2, k3 = (_attr(intr, f"radialDistortion{i}", where) for i in (1, 2, 3))
        p1, p2 = (_attr(intr, f"tangentalDistortion{i}", where) for i in (1, 2))
        dist = np.array([k1, k2, p1, p2, k3])
        if distortion == "pose2sim":
            dist = dist / 64.0
        elif distortion == "none":
            dist = np.zeros(5)
        m = np.array([[_attr(tr, f"r{i}{j}", where) for j in (1, 2, 3)] for i in (1, 2, 3)])
        if not np.allclose(m @ m.T, np.eye(3), atol=1e-5):
            raise ValueError(f"{where}: transform r11..r33 is not a rotation (R R^T - I up to "
                             f"{np.abs(m @ m.T - np.eye(3)).max():.2e})")
        center = np.array([_attr(tr, k, where) for k in ("x", "y", "z")]) / 1000.0     # mm -> m
        R_cw = _QCA_TO_CV @ m
        t_cw = -R_cw @ center
        out.append(CameraCalibration(serial, (w, h), K, dist, R_cw, t_cw, source=f"{p} (Qualisys, distortion={distortion})"))
    return sorted(out, key=lambda c: c.name)


def read_toml(path: str | Path) -> list[CameraCalibration]:
    """Cameras of a Pose2Sim / Sports2D ``Calib*.toml`` (OpenCV conventions, metres), in file order."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{p}: not valid TOML ({exc})") from None
    out = []
    for key, tab in data.items():
        if not isinstance(tab, dict) or "matrix" not in tab:
            continue
        where = f"{p.name} [{key}]"
        try:
            K = np.array(tab["matrix"], dtype=float)
            size = [float(v) for v in tab["size"]]
            dist = np.array(tab.get("distortions", [0, 0, 0, 0]), dtype=float)
            rvec = np.array(tab["rotation"], dtype=float)
            tvec = np.array(tab["translation"], dtype=float)
        except KeyError as exc:
            raise ValueError(f"{where}: key {exc.args[0]!r} missing") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: a value is not numeric ({exc})") from None
        if tab.get("fisheye", False):
            raise ValueError(f"{where}: fisheye = true is not supported (pinhole + Brown-Conrady only)")
        if rvec.shape != (3,) or tvec.shape != (3,) or len(size) != 2:
            raise ValueError(f"{where}: rotation and translation must have 3 values and size 2, got "
                             f"{rvec.tolist()}, {tvec.tolist()}, {size}")
        out.append(CameraCalibration(str(tab.get("name", key)), (int(round(size[0])), int(round(size[1]))), K, dist,
                                     rodrigues_to_matrix(rvec), tvec, source=f"{p} (toml)"))
    if not out:
        raise ValueError(f"{p}: no camera table (a table with 'matrix', 'size', 'rotation', 'translation')")
    return out


def read_calibration(path: str | Path) -> list[CameraCalibration]:
    """By extension: ``.qca.txt``/``.xml`` -> :func:`read_qca`, ``.toml`` -> :func:`read_toml`."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".toml"):
        return read_toml(p)
    if name.endswith((".qca.txt", ".qca", ".xml")):
        return read_qca(p)
    raise ValueError(f"calibration file {p}: unknown format (expected .toml or .qca.txt)")
