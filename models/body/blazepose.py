"""The BlazePose landmark topology: the 33 landmark names in the model's output order.

One definition for the whole project: the pose backends (``runtime.vision.pose_types``), the landmark
marker set and landmark IK (``models.body.landmark_markerset``, ``models.kinematics.landmark_ik``)
and the 2-D keypoint readers all index landmarks by this tuple. Names as MediaPipe writes them.
"""
from __future__ import annotations

#: BlazePose landmark names, index order of the model's output.
BLAZEPOSE_33: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)


def _mirror(name: str) -> str:
    return name.replace("left", "@").replace("right", "left").replace("@", "right")


#: Index of each landmark's mirror (left <-> right, ``mouth_left`` <-> ``mouth_right``; the nose is its own), for
#: the label-swap repairs of the triangulation and of the single-camera fit.
BLAZEPOSE_MIRROR_INDEX: tuple[int, ...] = tuple(BLAZEPOSE_33.index(_mirror(n)) for n in BLAZEPOSE_33)
