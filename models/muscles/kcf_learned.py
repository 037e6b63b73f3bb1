"""The learned knee contact force estimator, run by onnxruntime (no torch): medial / lateral KCF of one subject.

The network (``models.muscles.kcf_learned_train``: CNN -> BiGRU -> self-attention -> linear, plus a frozen ridge
skip on the frame's features) reads a window of :data:`WINDOW` frames of ``models.muscles.kcf_features`` at 60 Hz
and gives, per frame of the window, two quantities that do not depend on where the subject's contact points sit
(:data:`OUTPUTS`): the axial contact force ``F_ax`` (BW) and the frontal-plane contact moment about the tibia
origin over body weight times the half spacing of the contact points, ``m = M_f / (BW h)`` (dimensionless; with
symmetric points it is medial minus lateral in BW). The subject's contact points ``(d_m, d_l)``
(:class:`models.muscles.condyle_geometry.CondyleGeometry`: ``d_m = h + c``, ``d_l = h - c`` about the epicondyle
midpoint) then give medial and lateral by the Winby split of ``models.muscles.knee_contact`` (:func:`split`)::

    F_med = (F_ax d_l + M_f) / (d_m + d_l),    F_lat = F_ax - F_med,    M_f = m BW h,  h = (d_m + d_l) / 2

(v2 predicted medial and lateral directly, so a subject's condyle offset ``c``, which no feature carries, was
baked into the targets). Live (:meth:`LearnedKcf.step`, causal): the window ends at the newest frame and its last
output is the estimate, :data:`LAG_FRAMES` frames behind the features (the features lag the markers by the chain's
own ``lag_s``). Offline (:meth:`LearnedKcf.trial`): each frame is estimated from the window centred on it
(:data:`OFFLINE_AHEAD` frames of look-ahead). The artefact is ``models/artifacts/kcf_learned_v3.onnx`` with its
model card ``kcf_learned_v3.json`` (features, normalisation, outputs, split, data, metrics, SHA-256, a check output).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from models.muscles.kcf_features import FEATURE_NAMES, N_FEATURES, STANDARD_GRAVITY_M_S2, normalise
from models.muscles.knee_contact import medial_lateral_split

ARTIFACT_STEM = "kcf_learned_v3"
ARTIFACT_DIR = Path(__file__).resolve().parents[1] / "artifacts"
#: Frames per window (60 Hz: 0.53 s), the fixed time axis of the ONNX input (1, WINDOW, N_FEATURES).
WINDOW = 32
#: Live estimate = the window's last frame: no lag beyond the features'.
LAG_FRAMES = 0
#: Offline estimate = the window's frame WINDOW-1-OFFLINE_AHEAD (16 frames of the future seen).
OFFLINE_AHEAD = 16
OPSET = 17
#: The network's two outputs per frame, in this order: axial contact force / BW, and the frontal-plane contact moment
#: about the tibia origin / (BW * half spacing h) (positive loads the medial compartment).
OUTPUTS = ("axial_bw", "frontal_moment_per_bw_h")


def condyle_offsets(condyles: Any) -> tuple[float, float]:
    """``(d_m, d_l)`` (m) of ``condyles`` (a :class:`~models.muscles.condyle_geometry.CondyleGeometry` or a pair),
    each finite and > 0 (ValueError naming the offending geometry otherwise)."""
    offsets = getattr(condyles, "offsets_m", condyles)
    try:
        d_m, d_l = (float(v) for v in offsets)
    except (TypeError, ValueError):
        raise ValueError(f"condyles = {condyles!r}: need a CondyleGeometry or the contact points' offsets "
                         "(d_m, d_l) in m") from None
    if not (math.isfinite(d_m) and math.isfinite(d_l) and d_m > 0 and d_l > 0):
        raise ValueError(f"condyle offsets (d_m, d_l) = ({d_m!r}, {d_l!r}) m: both must be finite and > 0 (the "
                         "medial and lateral contact points on either side of the tibia origin)")
    return d_m, d_l


def invariant_targets(medial_bw: np.ndarray, lateral_bw: np.ndarray,
                      condyles: Any) -> tuple[np.ndarray, np.ndarray]:
    """The chain's medial and lateral KCF (BW) split at ``condyles`` -> the network's targets (:data:`OUTPUTS`):
    ``F_ax = F_med + F_lat`` (BW) and ``m = M_f / (BW h)`` with ``M_f / BW = F_med (d_m + d_l) - F_ax d_l``."""
    d_m, d_l = condyle_offsets(condyles)
    med, lat = np.asarray(medial_bw, dtype=float), np.asarray(lateral_bw, dtype=float)
    axial = med + lat
    return axial, (med * (d_m + d_l) - axial * d_l) / (0.5 * (d_m + d_l))


def split(axial_bw: np.ndarray, moment_per_bw_h: np.ndarray, condyles: Any) -> tuple[np.ndarray, np.ndarray]:
    """The network's outputs -> medial, lateral KCF (BW) at the contact points ``condyles``: the chain's own Winby
    split (:func:`models.muscles.knee_contact.medial_lateral_split`) with ``M_f / BW = m h``; the inverse of
    :func:`invariant_targets`."""
    d_m, d_l = condyle_offsets(condyles)
    return medial_lateral_split(axial_bw, np.asarray(moment_per_bw_h, dtype=float) * 0.5 * (d_m + d_l), d_m, d_l)


def causal_windows(z: np.ndarray) -> np.ndarray:
    """(N, F) -> (N, WINDOW, F): window i holds frames i-WINDOW+1 .. i (before frame 0: frame 0 repeated)."""
    z = np.asarray(z)
    p = np.concatenate([np.repeat(z[:1], WINDOW - 1, axis=0), z])
    return np.lib.stride_tricks.sliding_window_view(p, WINDOW, axis=0).transpose(0, 2, 1)


def centred_windows(z: np.ndarray) -> np.ndarray:
    """(N, F) -> (N, WINDOW, F): window i holds frames i-(WINDOW-1-OFFLINE_AHEAD) .. i+OFFLINE_AHEAD (edge-padded)."""
    z = np.asarray(z)
    back = WINDOW - 1 - OFFLINE_AHEAD
    p = np.concatenate([np.repeat(z[:1], back, axis=0), z, np.repeat(z[-1:], OFFLINE_AHEAD, axis=0)])
    return np.lib.stride_tricks.sliding_window_view(p, WINDOW, axis=0).transpose(0, 2, 1)


def load_card(directory: Path = ARTIFACT_DIR) -> dict[str, Any]:
    """The model card of the shipped network, its SHA-256 checked against the .onnx (ValueError if not equal)."""
    card = json.loads((directory / f"{ARTIFACT_STEM}.json").read_text())
    onnx = directory / card["artifact"]
    digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
    if digest != card["sha256"]:
        raise ValueError(f"{onnx}: sha256 {digest} != the model card's {card['sha256']}")
    if tuple(card["features"]["names"]) != FEATURE_NAMES:
        raise ValueError(f"{onnx}: the card's feature list differs from models.muscles.kcf_features.FEATURE_NAMES")
    if tuple(card["network"]["output"].get("names", ())) != OUTPUTS:
        raise ValueError(f"{onnx}: the card's outputs {card['network']['output'].get('names')} are not {OUTPUTS}")
    return card


class LearnedKcf:
    """Medial / lateral KCF (N) of one subject (``mass_kg``) from the features, by onnxruntime (one thread).

    ``condyles``: the knee's contact points, the chain's :class:`~models.muscles.condyle_geometry.CondyleGeometry`
    (``KinematicsToLoads.condyles``) or its ``offsets_m`` ``(d_m, d_l)`` in m; the network's axial force and
    normalised frontal moment are split there (:func:`split`). ``rate_hz``: the chain's frame rate, which must be
    the one the network was trained at (60 Hz)."""

    def __init__(self, mass_kg: float, condyles: Any, directory: Path = ARTIFACT_DIR, rate_hz: float = 60.0) -> None:
        import onnxruntime as ort

        if not (math.isfinite(mass_kg) and mass_kg > 0):
            raise ValueError(f"mass_kg = {mass_kg!r}: must be a finite positive number")
        self.offsets_m = condyle_offsets(condyles)
        self._half_spacing_m = 0.5 * sum(self.offsets_m)
        self.card = load_card(directory)
        shape = self.card["network"]["input"]["shape"]
        if shape != [1, WINDOW, N_FEATURES]:
            raise ValueError(f"card input shape {shape} != [1, {WINDOW}, {N_FEATURES}]")
        trained_hz = float(self.card["network"]["rate_hz"])
        if not math.isclose(rate_hz, trained_hz):
            raise ValueError(f"rate_hz = {rate_hz!r}: the learned KCF network was trained at {trained_hz:g} Hz")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(directory / self.card["artifact"]), so,
                                            providers=["CPUExecutionProvider"])
        self.mean = np.array(self.card["features"]["mean"], dtype=float)
        self.std = np.array(self.card["features"]["std"], dtype=float)
        self.bw_n = float(mass_kg) * STANDARD_GRAVITY_M_S2
        self._win = np.zeros((1, WINDOW, N_FEATURES), dtype=np.float32)
        self.out = np.full(2, np.nan)
        self.frames = 0

    def reset(self) -> None:
        """A new recording: the window is refilled from the next frame."""
        self.frames = 0

    def run(self, windows: np.ndarray) -> np.ndarray:
        """(1, WINDOW, F) normalised float32 -> (1, WINDOW, 2) the network's :data:`OUTPUTS` (axial BW, m)."""
        return self.session.run(None, {"features": windows})[0]

    def step(self, features: np.ndarray) -> np.ndarray:
        """One frame's raw features (F,) -> :attr:`out` (2,) medial, lateral KCF (N) of this frame (causal)."""
        z = normalise(features, self.mean, self.std).astype(np.float32)
        w = self._win
        if self.frames == 0:
            w[0, :] = z                                   # edge padding, as in training
        else:
            w[0, :-1] = w[0, 1:]
            w[0, -1] = z
        self.frames += 1
        axial, m = self.run(w)[0, WINDOW - 1 - LAG_FRAMES]
        self.out[:] = medial_lateral_split(float(axial), float(m) * self._half_spacing_m, *self.offsets_m)  # = split
        self.out *= self.bw_n
        return self.out

    def trial(self, features: np.ndarray, offline: bool = True) -> np.ndarray:
        """(N, F) raw features of a whole recording -> (N, 2) medial, lateral KCF (N): centred windows
        (``offline``) or the causal ones the live loop uses."""
        z = normalise(features, self.mean, self.std).astype(np.float32)
        w = centred_windows(z) if offline else causal_windows(z)
        pos = WINDOW - 1 - (OFFLINE_AHEAD if offline else LAG_FRAMES)
        y = np.empty((z.shape[0], 2))
        for i in range(z.shape[0]):
            y[i] = self.run(np.ascontiguousarray(w[i:i + 1]))[0, pos]
        return np.stack(split(y[:, 0], y[:, 1], self.offsets_m), axis=1) * self.bw_n
