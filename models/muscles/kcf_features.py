"""Per-frame input features of the learned knee contact force estimator, from the estimation chain's outputs.

One frame of ``runtime.estimation.chain.EstimateFrame`` -> a vector of
:data:`FEATURE_NAMES` (fixed order, SI unless the name says otherwise, world z up). The extractor is causal and
stateful (the velocities are backward differences, the centre-of-pressure travel is counted from the foot's
contact onset), so the live loop and an offline replay give the same vectors frame by frame.

Feet are ordered (``side``'s foot, the other foot), so a mirrored recording with the side swapped gives the same
kind of vector. The chain's own ingredients of its contact force enter too (:meth:`KcfFeatures.step`):
the knee-crossing muscles' tensions (static optimisation's ``A a + B``: activation x the subject-scaled maximum
isometric force x the force-length-velocity factor, plus passive) in BW, and the tibia's intersegmental reaction
force (BW) and moment (%BW*ht) from inverse dynamics, in the tibia frame, mirrored to one side (a right knee's
lateral force component and its frontal and transverse moment components change sign, so both knees share one
convention: medial = +z as on the left). Horizontal vectors enter by magnitude only (walking direction and
lateral sign differ between labs and between sides). Frames the chain marked invalid keep their NaNs here; the
network's normalisation replaces a non-finite feature by the training mean (:func:`normalise`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

STANDARD_GRAVITY_M_S2 = 9.80665
#: Joint coordinates of ``side`` (the chain's ``REPORTED_COORDINATES``), rad.
COORDINATES = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle")
#: The knee-crossing muscles of ``side`` whose tensions (BW) enter the features (MyoLeg names, no suffix). Their raw
#: activations do not: the same activation is another force in a stronger subject (v1 used them and carried poorly
#: to the other subject).
KNEE_MUSCLES = ("vasmed", "vaslat", "vasint", "recfem", "semimem", "semiten", "bflh", "bfsh", "gasmed", "gaslat",
                "grac", "sart", "tfl")
#: Synergy coefficients of the shipped W (``models.muscles.synergies``), k = 4.
N_SYNERGIES = 4

FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"{c}_rad" for c in COORDINATES)
    + tuple(f"{c}_vel_rad_s" for c in COORDINATES)
    + ("grf_vertical_side_bw", "grf_horizontal_side_bw", "grf_vertical_other_bw", "grf_horizontal_other_bw",
       "cop_travel_side_m", "cop_travel_other_m", "contact_side", "contact_other",
       "kam_pct_bw_ht", "kem_pct_bw_ht", "knee_moment_pct_bw_ht")
    + tuple(f"synergy_{j}" for j in range(N_SYNERGIES))
    + tuple(f"force_{m}_bw" for m in KNEE_MUSCLES)
    + ("reaction_force_x_bw", "reaction_force_y_bw", "reaction_force_z_bw",
       "reaction_moment_x_pct_bw_ht", "reaction_moment_y_pct_bw_ht", "reaction_moment_z_pct_bw_ht")
)
N_FEATURES = len(FEATURE_NAMES)
#: Feet order of the chain's ``grf_n`` / ``cop_m`` / ``contact`` (``models.grf.contact.FEET``).
_FEET = ("right", "left")
_FORCE = slice(25, 25 + len(KNEE_MUSCLES))
_REACTION = slice(_FORCE.stop, _FORCE.stop + 6)


class KcfFeatures:
    """Causal per-frame feature extractor for one knee (``side``) of one subject (``mass_kg``, ``height_m``).

    ``rate_hz``: frame rate of the chain (the velocities are ``(q[i] - q[i-1]) * rate_hz``, 0 on the first frame
    and after an invalid one). ``muscle_names``: the chain's activation order (with ``_r`` / ``_l`` suffixes).
    """

    def __init__(self, side: str, mass_kg: float, height_m: float, rate_hz: float,
                 muscle_names: Sequence[str]) -> None:
        if side not in ("left", "right"):
            raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
        for name, v in (("mass_kg", mass_kg), ("height_m", height_m), ("rate_hz", rate_hz)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} = {v!r}: must be a finite positive number")
        self.side = side
        self.rate_hz = float(rate_hz)
        self.bw_n = float(mass_kg) * STANDARD_GRAVITY_M_S2
        self.bw_ht_nm = self.bw_n * float(height_m)
        sfx = "_" + side[0]
        pos = {n: i for i, n in enumerate(muscle_names)}
        missing = [m + sfx for m in KNEE_MUSCLES if m + sfx not in pos]
        if missing:
            raise ValueError(f"muscle_names lacks {missing} (the learned KCF needs the chain run with muscles)")
        self._mus = np.array([pos[m + sfx] for m in KNEE_MUSCLES], dtype=int)
        self._feet = (_FEET.index(side), 1 - _FEET.index(side))
        # tibia frame of a right knee -> the left's convention: force z and moment x, y change sign (a reflection)
        self._mirror = np.array([1, 1, -1, -1, -1, 1], float) if side == "right" else np.ones(6)
        self.out = np.full(N_FEATURES, np.nan)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame and the contact onsets (a new recording)."""
        self._prev_q = np.full(len(COORDINATES), np.nan)
        self._onset = np.full((2, 2), np.nan)

    def step(self, frame: Any, muscle_force_n: np.ndarray, reaction_force_n: np.ndarray,
             reaction_moment_nm: np.ndarray) -> np.ndarray:
        """Features of one :class:`runtime.estimation.chain.EstimateFrame` (reads ``coordinates_rad`` (5,),
        ``grf_n`` (2, 3), ``cop_m`` (2, 3), ``contact`` (2,), ``kam_pct_bw_ht``, ``kem_pct_bw_ht``,
        ``knee_moment_nm``, ``synergy`` (4,), ``activation`` (only whether it is finite)) and the same frame's
        ingredients of the chain's contact force that the frame does not carry: ``muscle_force_n`` (n_muscles,) static optimisation's tensions
        (N) in the chain's muscle order, ``reaction_force_n`` (3,) N and ``reaction_moment_nm`` (3,) N m the tibia's
        intersegmental reaction from inverse dynamics (tibia frame, about its origin). Read only on frames whose
        activations are finite (the chain's muscle stage ran). Returns :attr:`out` (overwritten next call)."""
        f = self.out
        q = np.asarray(frame.coordinates_rad, dtype=float)
        if q.shape != (len(COORDINATES),):
            raise ValueError(f"coordinates_rad shape {q.shape}: expected ({len(COORDINATES)},) = {COORDINATES}")
        f[0:5] = q
        vel = (q - self._prev_q) * self.rate_hz
        f[5:10] = np.where(np.isfinite(vel), vel, 0.0)
        self._prev_q[:] = q
        grf = np.asarray(frame.grf_n, dtype=float)
        cop = np.asarray(frame.cop_m, dtype=float)
        contact = np.asarray(frame.contact, dtype=bool)
        for j, k in enumerate(self._feet):
            g = grf[k]
            loaded = bool(contact[k]) and bool(np.isfinite(g).all())
            f[10 + 2 * j] = g[2] / self.bw_n if loaded else 0.0
            f[11 + 2 * j] = math.hypot(g[0], g[1]) / self.bw_n if loaded else 0.0
            c = cop[k, :2]
            if loaded and np.isfinite(c).all():
                if not np.isfinite(self._onset[j]).all():
                    self._onset[j] = c
                f[14 + j] = float(np.hypot(*(c - self._onset[j])))
            else:
                self._onset[j] = np.nan
                f[14 + j] = 0.0
            f[16 + j] = 1.0 if loaded else 0.0
        f[18] = frame.kam_pct_bw_ht
        f[19] = frame.kem_pct_bw_ht
        f[20] = 100.0 * frame.knee_moment_nm / self.bw_ht_nm
        syn = np.asarray(frame.synergy, dtype=float)
        f[21:25] = syn if syn.size == N_SYNERGIES else np.nan
        act = np.asarray(frame.activation, dtype=float)
        if act.size and np.isfinite(act[self._mus]).all():     # the chain's muscle stage ran this frame
            self._loads(muscle_force_n, reaction_force_n, reaction_moment_nm)
        else:
            f[_FORCE] = f[_REACTION] = np.nan
        if not np.isfinite(q).all():
            self._prev_q[:] = np.nan
        return f

    def _loads(self, muscle_force_n: np.ndarray, reaction_force_n: np.ndarray, reaction_moment_nm: np.ndarray) -> None:
        """The muscle tensions (BW) and the tibia's reaction (BW, %BW*ht, one side's convention) into :attr:`out`."""
        f = self.out
        force = np.asarray(muscle_force_n, dtype=float)
        rf = np.asarray(reaction_force_n, dtype=float)
        rm = np.asarray(reaction_moment_nm, dtype=float)
        if rf.shape != (3,) or rm.shape != (3,):
            raise ValueError(f"reaction_force_n {rf.shape} and reaction_moment_nm {rm.shape}: both must be (3,)")
        if force.ndim != 1 or force.size <= int(self._mus.max()):
            raise ValueError(f"muscle_force_n shape {force.shape}: expected (n_muscles,) in the chain's muscle order")
        f[_FORCE] = force[self._mus] / self.bw_n
        f[_REACTION] = np.concatenate([rf / self.bw_n, 100.0 * rm / self.bw_ht_nm]) * self._mirror


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std per feature; a non-finite feature becomes 0 (the training mean)."""
    z = (np.asarray(x, dtype=float) - mean) / std
    return np.where(np.isfinite(z), z, 0.0)
