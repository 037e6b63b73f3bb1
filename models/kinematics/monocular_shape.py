"""Per-trial segment-length corrections of the monocular fit: thigh, shank, foot and trunk stretched along
the model's own segments, estimated from the 2-D keypoints with the floor and the calibrated camera.

Why: the scaled model's lengths come from height and mass (regressions), but one camera sizes the body from
its image, so every percent of thigh or shank length error moves the body by that percent along the camera
axis (28 cm at 7 m for the 6-9 % long thighs of the DM model, measured before this module) and bends the knee
to fit the image.  With a calibrated camera, the floor contact of a stance foot fixes how far the foot is;
the image then fixes the segments' lengths.  One correction per segment for the whole trial (both sides alike:
bilateral symmetry), each with a prior on the regression's error (:class:`~models.kinematics.monocular_params
.MonocularFitParams` ``shape_sigma``).

Definition (``s`` = relative length change, 0 = the model): the sites move as points of the stretched chain,
``P' = A(s) P`` with ``A(s) = I + sum_g s_g B_g`` (M x M, linear in ``s``):

* thigh ``s_t``: the knee site and every site below it (ankle, heel, toe tip) of each leg move by
  ``s_t (knee - hip)`` (the femur lengthened about the hip joint centre);
* shank ``s_s``: ankle, heel and toe tip move by ``s_s (ankle - knee)``;
* foot ``s_f``: heel and toe tip move by ``s_f (p - ankle)`` (the foot scaled about the ankle centre; shoes
  make the detected heel-to-toe length 10-20 % longer than the bare foot: 0.30-0.32 m against the model's
  0.26 m on the shared lab trials);
* trunk ``s_k``: the shoulders move by ``s_k (shoulder - mid-hip)`` (the trunk height).

So ``dP'/dx = A(s) dP/dx`` and ``dP'/ds_g = B_g P``, exactly.  Frames: world, z up, m.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SHAPE_NAMES", "apply_shape", "shape_matrices"]

#: The segment-length corrections, in the order of the shape vector.
SHAPE_NAMES: tuple[str, ...] = ("thigh", "shank", "foot", "trunk")


def shape_matrices(landmark_names: tuple[str, ...]) -> np.ndarray:
    """``B`` (G, M, M): ``B[g] @ P`` is the displacement of the sites ``P`` (M, 3) per unit of correction g."""
    idx = {n: i for i, n in enumerate(landmark_names)}
    M = len(landmark_names)
    B = np.zeros((len(SHAPE_NAMES), M, M))
    def i(side: str, p: str) -> int:
        k = idx.get(f"{side}_{p}")
        if k is None:
            raise KeyError(f"shape corrections need the landmark {side}_{p}; landmarks: {list(landmark_names)}")
        return k

    for side in ("left", "right"):
        hip, knee, ankle = i(side, "hip"), i(side, "knee"), i(side, "ankle")
        feet = [i(side, "heel"), i(side, "foot_index")]
        for r in [knee, ankle] + feet:
            B[0, r, knee] += 1.0
            B[0, r, hip] -= 1.0
        for r in [ankle] + feet:
            B[1, r, ankle] += 1.0
            B[1, r, knee] -= 1.0
        for r in feet:
            B[2, r, r] += 1.0
            B[2, r, ankle] -= 1.0
        sh = idx.get(f"{side}_shoulder")
        if sh is not None:
            B[3, sh, sh] += 1.0
            B[3, sh, idx["left_hip"]] -= 0.5
            B[3, sh, idx["right_hip"]] -= 0.5
    return B


def apply_shape(B: np.ndarray, s: np.ndarray, P: np.ndarray, J: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Shaped sites ``P'`` (M, 3), their coordinate Jacobian ``A(s) J`` (M, 3, n) (None without ``J``) and
    ``dP'/ds`` (M, 3, G) of sites ``P`` (M, 3) and ``J`` (M, 3, n) at corrections ``s`` (G,)."""
    A = np.eye(P.shape[0]) + np.tensordot(s, B, axes=1)
    Ps = A @ P
    Js = None if J is None else np.einsum("ij,jan->ian", A, J)
    dS = np.einsum("gij,ja->iag", B, P)
    return Ps, Js, dS
