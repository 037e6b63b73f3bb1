"""Weights and thresholds of model-based monocular fitting, each with its reason (SI units).

The cost is a sum of squared, normalised residuals ``(value - target) / sigma``; each ``sigma`` below is the
spread that the term is meant to allow, so the weights are ``1 / sigma^2`` and comparable across terms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from models.body.landmark_markerset import SHOULDER_WEIGHT

__all__ = ["MonocularFitParams", "MIN_LAG_FRAMES", "MAX_LAG_S"]

#: Fewest frames of lag of the live fit: its window (lag + 1 frames) must span the acceleration prior's three.
MIN_LAG_FRAMES = 2
#: Longest live window allowed, s (a longer one is no longer a live estimate).
MAX_LAG_S = 1.0


@dataclass(frozen=True)
class MonocularFitParams:
    """Parameters of :func:`models.kinematics.monocular_fit.fit_monocular` and ``MonocularFitter``.

    Reprojection: ``pixel_sigma_px`` the keypoint noise the fit is specified for (2 px: the issue's synthetic
    check; real detectors are worse and then simply sit further out on the robust loss); Huber loss on each
    landmark's 2-D error norm with threshold ``huber_k`` sigmas (1.345: Huber's constant for 95 % efficiency
    under Gaussian noise, so a 200 px outlier enters with weight 1.345 * 2 / 200 = 0.013); each landmark
    weighted by its detector score, landmarks below ``min_score`` not used (0.5, as the landmark IK's
    ``min_visibility``); shoulders at ``shoulder_weight`` (MyoLeg's trunk is rigid with the pelvis: the landmark
    IK's 0.2).

    Temporal prior (per coordinate, on finite differences of the coordinates): acceleration sigmas
    ``accel_sigma_joint_rad_s2`` = 150 rad/s^2 (about the peak knee angular acceleration of normal walking,
    Winter 2009 ch. 3, so real motion is barely penalised), ``accel_sigma_pelvis_rad_s2`` = 50 rad/s^2 (pelvis
    rotations are 3-5x smaller and slower than the knee's), ``accel_sigma_pelvis_m_s2`` = 5 m/s^2 (about 1.5x
    the peak pelvis acceleration of walking); velocity sigmas ``velocity_sigma_rad_s`` = 10 rad/s (above the
    6-7 rad/s peak knee velocity of walking) and ``velocity_sigma_m_s`` = 3 m/s (above running-walk speeds).
    Out-of-plane prior: hip adduction and hip rotation barely move the landmarks' images for a side-on camera
    (a straight leg rotating about its own axis), so they get a weak pull to neutral, ``neutral_sigma_rad`` =
    0.15 rad (9 deg: about the +-5-8 deg range of both in normal walking, Perry & Burnfield 2010).
    Joint limits are hard bounds (every step is projected onto the model's ranges), not a soft penalty.

    Foot-floor contact (stance found from the 2-D data, :mod:`models.kinematics.monocular_contact`): the
    contact landmark (the lowest heel/toe keypoint) of a stance foot stands ``contact_height_m`` above z = 0
    (0.05 m, as ``runtime.vision.world.FOOT_LANDMARK_HEIGHT_M``: the lowest heel/toe landmark of the
    triangulated pose2sim demo subject stands 0.056 m above the lab floor: detectors and lab markers put these
    points on the shoe, not at the sole; on the shared lab trials the toe markers stand 0.052-0.055 m above it
    in stance; ``None``: the model's own site heights, for keypoints that are the model's sites), within
    ``contact_sigma_m`` (1 cm:
    the heel/toe landmark rises by about that while the foot rolls) and its horizontal speed within
    ``slide_sigma_m_s`` (0.05 m/s: a planted foot moves far less than the 0.5 m/s stance threshold).
    Stance: the foot's lowest landmark moving slower than ``stance_speed_m_s`` (0.5 m/s, as
    ``runtime.vision.world``'s stance test; the swing foot moves at 2-4 m/s, the planted one at ~0) over a
    centred ``stance_window_s`` (0.1 s: averages 2 px noise down to ~0.15 m/s at 7 m) and no more than
    ``stance_height_m`` (5 cm) above the other foot's lowest landmark.

    Optional weak prior on BlazePose's 3-D world landmarks (pelvis-relative shape): ``prior_sigma_m`` = 0.065
    m, the 5-8 cm shape error left after the best rotation measured on the pose2sim demo (``runtime.vision
    .world`` docstring).

    Segment lengths (:mod:`models.kinematics.monocular_shape`): with ``estimate_shape`` the offline smoother
    also fits one relative length correction per segment for the whole trial (thigh, shank, foot, trunk),
    each within ``shape_sigma``: thigh and shank 0.05 (the spread of segment length over stature between
    adults, about 4-5 %: Winter 2009 table 4.1 gives the mean proportions only, anthropometric surveys such as
    ANSUR II put the coefficient of variation of thigh and shank length over stature near 4 %), foot 0.15
    (shoes add 10-20 % to the heel-to-toe length the keypoints see), trunk 0.10 (hip-to-shoulder height, and
    where a detector or marker puts the shoulder point: acromion or joint centre).  The per-frame
    initialisation and the live fitter keep the model's lengths (0).

    Solver: Levenberg-Marquardt on the sparse normal equations (IRLS for the Huber loss); ``max_iterations``
    (200: the shared lab trials converge in 86 or fewer, the pose2sim demo's cam01 with the world-landmark prior in
    164; the model-generated walk in 10-25)
    for the whole-trial smoother, ``frame_iterations`` per frame of the initialisation; converged when the
    largest step is below ``tolerance`` (rad or m) or a step lowers the cost by less than 1e-7 of it;
    ``converged_error_px``: a frame whose median landmark reprojection error (the median: one outlier keypoint
    must not flag a good fit) ends above this (5 sigmas) is flagged not converged; ``reinit_error_px``
    (10 sigmas): a warm-started frame above it is re-solved from a cold start.  ``min_landmarks``: fewer used landmarks and the
    frame is carried by the temporal prior only (6, as the landmark IK).  ``cold_headings``: pelvis headings
    tried in a cold start (evenly spaced over 360 deg; 8 = 45 deg apart, within the basin of the fit).
    Live: the fixed-lag window is set in time, ``lag_s`` (s): the output lags by :meth:`lag_frames_at` = ``lag_s``
    times the camera's frame rate, rounded to whole frames, at least 2 (the window of ``lag + 1`` frames must span
    the three frames of the acceleration prior), so the lag in ms is the same at 30 and 60 fps.  1/15 s (67 ms: 2
    frames at 30 fps, 4 at 60 fps): measured on the model-generated walk (seed 0, tests/test_monocular_fit.py), mean
    sagittal RMSE from the truth 1.56 deg at 60 fps (offline smoother 1.44; 117 ms of lag 1.52; 50 ms 2.10; 33 ms
    7.4: too short a window to separate depth from motion) and 1.90 deg at 30 fps (offline 1.82; 233 ms 1.80).  The
    live loop adds a camera frame and an estimation cycle to the lag before the torque loop's staleness limit
    (``runtime.vision.front_end.check_fit_lag``).  ``live_iterations`` LM iterations per new frame (2: measured on the
    synthetic walk, a third changes the live-offline difference by < 0.1 deg).
    """

    pixel_sigma_px: float = 2.0
    huber_k: float = 1.345
    min_score: float = 0.5
    shoulder_weight: float = SHOULDER_WEIGHT
    accel_sigma_joint_rad_s2: float = 150.0
    accel_sigma_pelvis_rad_s2: float = 50.0
    accel_sigma_pelvis_m_s2: float = 5.0
    velocity_sigma_rad_s: float = 10.0
    velocity_sigma_m_s: float = 3.0
    neutral_sigma_rad: float = 0.15
    contact_height_m: float | None = 0.05
    contact_sigma_m: float = 0.01
    slide_sigma_m_s: float = 0.05
    stance_speed_m_s: float = 0.5
    stance_window_s: float = 0.1
    stance_height_m: float = 0.05
    prior_sigma_m: float = 0.065
    estimate_shape: bool = True
    shape_sigma: tuple[float, float, float, float] = (0.05, 0.05, 0.15, 0.10)
    max_iterations: int = 200
    frame_iterations: int = 30
    tolerance: float = 1e-5
    converged_error_px: float = 10.0
    reinit_error_px: float = 20.0
    min_landmarks: int = 6
    cold_headings: int = 8
    lag_s: float = 1.0 / 15.0
    live_iterations: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "estimate_shape":
                if not isinstance(v, bool):
                    raise ValueError(f"MonocularFitParams.estimate_shape must be True or False, got {v!r}")
                continue
            if f.name == "shape_sigma":
                ok = isinstance(v, tuple) and len(v) == 4 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in v)
                if not ok:
                    raise ValueError("MonocularFitParams.shape_sigma must be 4 positive numbers (thigh, shank, foot, "
                                     f"trunk relative length sigmas), got {v!r}")
                continue
            if f.name == "contact_height_m":
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 0.2):
                    raise ValueError(f"MonocularFitParams.contact_height_m must be None or 0..0.2 m, got {v!r}")
                continue
            if f.type == "int" or isinstance(v, int) and not isinstance(v, bool):
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"MonocularFitParams.{f.name} must be a positive integer, got {v!r}")
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                    raise ValueError(f"MonocularFitParams.{f.name} must be a positive finite number, got {v!r}")
        if self.min_score > 1.0:
            raise ValueError(f"MonocularFitParams.min_score must lie in (0, 1], got {self.min_score!r}")
        if self.lag_s > MAX_LAG_S:
            raise ValueError(f"MonocularFitParams.lag_s must be at most {MAX_LAG_S:g} s (a live window), got "
                             f"{self.lag_s!r}")

    def lag_frames_at(self, fps: float) -> int:
        """The live fit's lag in frames at a camera of ``fps`` frames per second: ``lag_s * fps`` rounded, at least
        :data:`MIN_LAG_FRAMES` (the window is one frame more)."""
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"camera frame rate fps = {fps!r}: the live fit's window needs a positive frame rate")
        return max(MIN_LAG_FRAMES, int(round(self.lag_s * fps)))
