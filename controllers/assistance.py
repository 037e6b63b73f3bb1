"""Knee assistance strategies behind one interface, limited in one place.

Convention (as the rest of the project): knee flexion positive; a torque is positive when it flexes
the knee, so an *extension* assist is negative. ``knee_moment_nm`` is the estimated biological
(internal, net muscular) knee moment in the same convention, N*m: a positive assistance fraction of
it helps the muscles produce it.

Strategies (``AssistanceParameters.strategy``):

* ``"synergy"``: ``tau = level * moment_fraction * s * M`` with ``s`` in [0, 1] the stance-phase
  knee-extensor synergy's coefficient, normalised by its recent peak. The synergy is the column of
  the NMF artifact (:mod:`models.muscles.synergies`, ``synergies_myoleg_v1``) with the largest weight on the
  mono-articular knee extensors (vastus lateralis, medialis, intermedius): in the shared trials it
  is the glutei + vasti weight-acceptance synergy of early stance. Its coefficient comes from the
  current muscle activations by non-negative least squares ``min |W c - a|, c >= 0``. Only during
  stance with a valid gait phase; with ``extension_only`` only extension moments are assisted.
* ``"phase_profile"``: the fixed phase-based profile of :mod:`controllers.phase_profile` (peak in
  N*m/kg of body mass), only while the gait phase is valid.
* ``"proportional"``: ``tau = level * moment_fraction * M`` (proportional joint-moment control).

Common to all: the clinician's ``level`` in [0, 1] (changeable at run time), a linear ramp-in over
``ramp_in_s`` from the first step, an optional gain in [0, 1] from the caller (the confidence gate,
:mod:`controllers.confidence_gate`), ``extension_only`` (every strategy: a request that would flex the
knee, i.e. a positive torque, is replaced by zero before the limiter, so the command is never a flexion
torque) and :class:`controllers.command_limits.CommandLimiter` (torque cap, slew limit, NaN/inf -> zero
with a flag) as the *only* limiting. Each strategy is a stage object:
``step(AssistanceInput) -> AssistanceOutput``, no globals; :class:`AssistanceStage` adds the gait-phase
estimator (:mod:`controllers.gait_phase`) in front, for the 60 Hz pipeline (``step(StageInput)``), and an
optional fallback strategy (proportional) while the gait phase does not lock, with the reason as an event;
``runtime.wiring.assistance_controller(device, subject)`` builds it from the configuration files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np

from .command_limits import MAX_SLEW_NM_PER_S, MAX_TORQUE_NM, CommandLimiter, CommandLimits, LimitFlag
from .gait_phase import GaitPhaseEstimator
from .phase_profile import PhaseProfileController, PhaseProfileParams
from models.param_ranges import check_ranges

STRATEGIES = ("synergy", "phase_profile", "proportional")
KNEE_EXTENSORS = ("vaslat", "vasmed", "vasint")


@dataclass(frozen=True, slots=True)
class AssistanceInput:
    """One step's inputs. ``dt_s``: time since the previous step (s)."""

    t_s: float
    dt_s: float
    phase: float = math.nan               # gait phase 0..1 from heel strike, nan if unknown
    phase_valid: bool = False
    stance: bool | None = None
    knee_moment_nm: float = math.nan      # biological internal knee moment, flexion positive, N*m
    activations: np.ndarray | None = None  # muscle activations 0..1 in SynergyShape.muscle_names order


@dataclass(frozen=True, slots=True)
class AssistanceOutput:
    """One step's command. ``torque_nm`` is limited; ``requested_nm`` is what the strategy asked."""

    t_s: float
    torque_nm: float
    requested_nm: float
    flags: LimitFlag
    ramp_gain: float                      # 0..1
    level: float
    shape: float                          # synergy shape 0..1 (1 for the other strategies when active)
    active: bool                          # the strategy asked for assistance at this step
    strategy: str
    gain: float = 1.0                     # the caller's gain 0..1 (confidence gate) applied before the limiter

    @property
    def fault(self) -> bool:
        return bool(self.flags & (LimitFlag.NONFINITE_REQUEST | LimitFlag.BAD_DT))


@dataclass(frozen=True, slots=True)
class AssistanceParameters:
    """Per-subject assistance settings (units in the names)."""

    strategy: Literal["synergy", "phase_profile", "proportional"] = "synergy"
    level: float = 0.3                    # clinician's assistance level 0..1
    body_mass_kg: float = 75.0
    moment_fraction: float = 0.3          # fraction of the biological moment at level 1 (synergy, proportional)
    ramp_in_s: float = 2.0
    torque_limit_nm: float = 18.0
    slew_limit_nm_per_s: float = 300.0
    peak_nm_per_kg: float = 0.2           # phase profile peak at level 1
    phase_peak: float = 0.12
    phase_width: float = 0.05
    extension_only: bool = True           # every strategy: never request a flexion (positive) torque
    synergy_peak_decay_s: float = 10.0    # time constant of the running peak normaliser
    synergy_min_reference: float = 0.05   # floor of that peak (activation-norm units)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"AssistanceParameters.strategy = {self.strategy!r}: allowed {', '.join(STRATEGIES)}")
        ranges = {"level": (0.0, 1.0), "body_mass_kg": (20.0, 250.0), "moment_fraction": (0.0, 1.0),
                  "ramp_in_s": (0.0, 30.0), "torque_limit_nm": (1e-3, MAX_TORQUE_NM), "slew_limit_nm_per_s": (1e-3, MAX_SLEW_NM_PER_S),
                  "peak_nm_per_kg": (0.0, 2.0), "phase_peak": (0.0, 0.999), "phase_width": (0.005, 0.3),
                  "synergy_peak_decay_s": (0.1, 600.0), "synergy_min_reference": (1e-4, 10.0)}
        check_ranges("AssistanceParameters", self, ranges)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> "AssistanceParameters":
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"AssistanceParameters: unknown keys {sorted(unknown)}; "
                             f"allowed {sorted(cls.__dataclass_fields__)}")
        return cls(**values)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- synergy shape

@dataclass(frozen=True)
class SynergyShape:
    """The knee-extensor synergy of the NMF artifact: ``W`` (m, k), its column ``index``."""

    W: np.ndarray
    muscle_names: tuple[str, ...]
    index: int
    extensor_weight: float                # sum of the column's weights on KNEE_EXTENSORS
    source: str = ""

    @classmethod
    def from_artifact(cls, path: str | Path | None = None) -> "SynergyShape":
        from models.muscles.synergies import ARTIFACT_PATH, load_synergies
        p = Path(path) if path is not None else ARTIFACT_PATH
        syn = load_synergies(p)
        return cls.from_matrix(syn.W, syn.muscle_names, source=str(p.name))

    @classmethod
    def from_matrix(cls, W: np.ndarray, muscle_names: Sequence[str], source: str = "") -> "SynergyShape":
        W = np.asarray(W, dtype=float)
        names = tuple(muscle_names)
        if W.ndim != 2 or W.shape[0] != len(names) or not np.all(np.isfinite(W)) or np.any(W < 0):
            raise ValueError(f"synergy W: need finite non-negative (m={len(names)}, k), got shape {W.shape}")
        rows = [names.index(n) for n in KNEE_EXTENSORS if n in names]
        if not rows:
            raise ValueError(f"synergy muscles contain none of the knee extensors {KNEE_EXTENSORS}")
        weight = W[rows].sum(axis=0)
        idx = int(np.argmax(weight))
        return cls(W=W, muscle_names=names, index=idx, extensor_weight=float(weight[idx]), source=source)

    def coefficient(self, activations: np.ndarray) -> float:
        """Extensor synergy coefficient of ``activations`` (NNLS on all synergies); nan if unusable."""
        a = np.asarray(activations, dtype=float)
        if a.shape != (len(self.muscle_names),) or not np.all(np.isfinite(a)):
            return math.nan
        from scipy.optimize import nnls
        c, _ = nnls(self.W, np.clip(a, 0.0, None))
        return float(c[self.index])


# ----------------------------------------------------------------------------- strategies

class AssistanceStrategy:
    """Base stage: ramp-in, level and the limiter; subclasses give the raw request (N*m)."""

    name = "base"

    def __init__(self, params: AssistanceParameters) -> None:
        self.params = params
        self._level = params.level
        self.limiter = CommandLimiter(CommandLimits(params.torque_limit_nm, params.slew_limit_nm_per_s))
        self._t_start: float | None = None

    @property
    def level(self) -> float:
        return self._level

    def set_level(self, level: float) -> None:
        """Clinician's assistance level 0..1 (the command follows under the slew limit)."""
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not (0.0 <= level <= 1.0):
            raise ValueError(f"assistance level = {level!r}: allowed 0 <= level <= 1")
        self._level = float(level)

    def reset(self) -> None:
        """Back to zero output; the ramp-in starts again at the next step."""
        self.limiter.reset(0.0)
        self._t_start = None

    def _ramp(self, t_s: float) -> float:
        if not math.isfinite(t_s):
            return 0.0
        if self._t_start is None:
            self._t_start = t_s
        if self.params.ramp_in_s <= 0.0:
            return 1.0
        return min(1.0, max(0.0, (t_s - self._t_start) / self.params.ramp_in_s))

    def _request(self, x: AssistanceInput) -> tuple[float, float, bool]:
        """(raw torque at level 1 before ramp N*m, shape 0..1, active)."""
        raise NotImplementedError

    def step(self, x: AssistanceInput, gain: float = 1.0) -> AssistanceOutput:
        """One command: ``gain`` (0..1; non-finite counts as 0) scales the request after the strategy and before
        the limiter; with ``extension_only`` a positive (flexion) request becomes zero."""
        g = float(gain) if isinstance(gain, (int, float)) and math.isfinite(gain) else 0.0
        g = min(1.0, max(0.0, g))
        ramp = self._ramp(x.t_s)
        raw, shape, active = self._request(x)
        requested = self._level * ramp * raw * g if active else 0.0
        if active and not math.isfinite(raw):
            requested = math.nan                           # let the limiter flag it
        elif self.params.extension_only and requested > 0.0:
            requested = 0.0                                # never a flexion torque, whatever the strategy
        out, flags = self.limiter.step(requested, x.dt_s)
        return AssistanceOutput(x.t_s, out, requested, flags, ramp, self._level, shape, active, self.name, g)


class SynergyAssistance(AssistanceStrategy):
    """Fraction of the biological knee moment shaped by the stance-phase extensor synergy coefficient."""

    name = "synergy"

    def __init__(self, params: AssistanceParameters, shape: SynergyShape | None = None) -> None:
        super().__init__(params)
        self.shape = shape if shape is not None else SynergyShape.from_artifact()
        self._peak = params.synergy_min_reference
        self._t_prev: float | None = None

    def reset(self) -> None:
        super().reset()
        self._peak = self.params.synergy_min_reference
        self._t_prev = None

    def _request(self, x: AssistanceInput) -> tuple[float, float, bool]:
        p = self.params
        if not (x.phase_valid and x.stance) or x.activations is None:
            return 0.0, 0.0, False
        c = self.shape.coefficient(x.activations)
        m = x.knee_moment_nm
        if not math.isfinite(c) or not isinstance(m, (int, float)):
            return math.nan, 0.0, True
        dt = x.dt_s if (isinstance(x.dt_s, (int, float)) and math.isfinite(x.dt_s) and x.dt_s > 0) else 0.0
        self._peak = max(c, p.synergy_min_reference + (self._peak - p.synergy_min_reference)
                         * math.exp(-dt / p.synergy_peak_decay_s))
        s = min(1.0, max(0.0, c / self._peak))
        if p.extension_only and math.isfinite(m):
            m = min(0.0, m)
        return p.moment_fraction * s * m, s, True


class PhaseProfileAssistance(AssistanceStrategy):
    """Fixed phase-based extension-assist bump (``controllers.phase_profile``), peak scaled by body mass."""

    name = "phase_profile"

    def __init__(self, params: AssistanceParameters) -> None:
        super().__init__(params)
        peak = max(1e-6, params.peak_nm_per_kg * params.body_mass_kg)
        self._profile = PhaseProfileController(
            PhaseProfileParams(peak_nm=min(peak, MAX_TORQUE_NM), phase_peak=params.phase_peak, phase_width=params.phase_width),
            assistance_level=1.0)

    def _request(self, x: AssistanceInput) -> tuple[float, float, bool]:
        if not x.phase_valid or not (isinstance(x.phase, (int, float)) and 0.0 <= x.phase < 1.0):
            return 0.0, 0.0, False
        if self.params.peak_nm_per_kg == 0.0:
            return 0.0, 1.0, True
        return self._profile.torque_nm(x.phase), 1.0, True


class ProportionalMomentAssistance(AssistanceStrategy):
    """Proportional joint-moment control: a fixed fraction of the estimated biological moment."""

    name = "proportional"

    def _request(self, x: AssistanceInput) -> tuple[float, float, bool]:
        m = x.knee_moment_nm
        if not isinstance(m, (int, float)):
            return math.nan, 1.0, True
        return self.params.moment_fraction * m, 1.0, True


def make_strategy(params: AssistanceParameters, synergy_shape: SynergyShape | None = None) -> AssistanceStrategy:
    """The strategy named by ``params.strategy``."""
    if params.strategy == "synergy":
        return SynergyAssistance(params, synergy_shape)
    if params.strategy == "phase_profile":
        return PhaseProfileAssistance(params)
    if params.strategy == "proportional":
        return ProportionalMomentAssistance(params)
    raise ValueError(f"strategy = {params.strategy!r}: allowed {', '.join(STRATEGIES)}")


# ----------------------------------------------------------------------------- the 60 Hz pipeline stage

@dataclass(frozen=True, slots=True)
class StageInput:
    """What the estimation pipeline knows at one frame (SI units; flexion positive)."""

    t_s: float
    knee_flexion_rad: float
    knee_moment_nm: float = math.nan
    activations: np.ndarray | None = None       # SynergyShape.muscle_names order
    vertical_grf_n: float | None = None         # for GaitPhaseParams(source="grf")


@dataclass(frozen=True, slots=True)
class StrategyEvent:
    """The stage switched strategy at ``t_s`` (s): ``kind`` "fallback" (to ``strategy``, the gait phase did not
    lock for ``phase_lock_timeout_s``) or "primary" (back, the phase locked); ``reason`` in words."""

    t_s: float
    kind: str
    strategy: str
    reason: str


class AssistanceStage:
    """Gait phase + strategy as one stage: ``step(StageInput, gain=1.0) -> AssistanceOutput``. No globals.

    ``runtime.wiring.assistance_controller(device, subject)`` builds it from ``runtime.core.config`` (strategy, limits,
    level, mass, gait-phase source, fallback). ``dt`` is taken from successive ``t_s`` (the first step uses 0: no slew
    allowance, the output starts at zero). ``gain`` (0..1, the confidence gate) scales the request before the limiter.

    ``fallback`` (a strategy that needs no gait phase, e.g. proportional): used while the gait phase has not been
    valid for ``phase_lock_timeout_s`` (s, frame time); the configured strategy again as soon as the phase locks.
    Both share one limiter (the same limits), so a switch is slew-limited like any other change of the request.
    Each switch is a :class:`StrategyEvent` in ``events`` (``new_events()`` hands out the unseen ones).
    """

    def __init__(self, strategy: AssistanceStrategy, gait: GaitPhaseEstimator,
                 fallback: AssistanceStrategy | None = None, phase_lock_timeout_s: float = 5.0) -> None:
        if not (isinstance(phase_lock_timeout_s, (int, float)) and math.isfinite(phase_lock_timeout_s)
                and phase_lock_timeout_s > 0.0):
            raise ValueError(f"phase_lock_timeout_s = {phase_lock_timeout_s!r}: allowed > 0 s")
        if fallback is not None:
            if fallback.params.torque_limit_nm != strategy.params.torque_limit_nm or \
                    fallback.params.slew_limit_nm_per_s != strategy.params.slew_limit_nm_per_s:
                raise ValueError("fallback strategy: its torque and slew limits must equal the strategy's")
            fallback.limiter = strategy.limiter          # one command, one limiter
        self.strategy = strategy
        self.fallback = fallback
        self.gait = gait
        self.phase_lock_timeout_s = float(phase_lock_timeout_s)
        self.events: list[StrategyEvent] = []
        self._seen = 0
        self._t_prev: float | None = None
        self._unlocked_since: float | None = None
        self._on_fallback = False
        self._peak_flexion = -math.inf                   # rad, while unlocked
        self._min_grf = math.inf                         # N, while unlocked

    @property
    def running(self) -> AssistanceStrategy:
        """The strategy that produces the command now."""
        return self.fallback if (self._on_fallback and self.fallback is not None) else self.strategy

    def set_level(self, level: float) -> None:
        """Clinician's assistance level 0..1, for the strategy and its fallback."""
        self.strategy.set_level(level)
        if self.fallback is not None:
            self.fallback.set_level(level)

    def new_events(self) -> list[StrategyEvent]:
        """The strategy switches since the last call."""
        out = self.events[self._seen:]
        self._seen = len(self.events)
        return out

    def _why_unlocked(self, t_s: float, state: str, strides: int) -> str:
        p = self.gait.params
        span = t_s - (self._unlocked_since if self._unlocked_since is not None else t_s)
        head = f"gait phase did not lock for {span:.1f} s ({state})"
        if strides < 2:
            strikes = (f"{strides} heel strike{'s' if strides != 1 else ''} seen, a lock needs two "
                       f"{p.min_period_s:g}-{p.max_period_s:g} s apart")
        else:
            strikes = (f"{strides} heel strikes seen, their intervals not within {p.min_period_s:g}-{p.max_period_s:g} s "
                       f"or within {100 * p.max_period_change:.0f} % of each other")
        if p.source == "grf":
            if math.isfinite(self._min_grf) and self._min_grf > p.grf_off_n:
                return (f"{head}: no foot unloaded in the kinematic GRF for {span:.1f} s (minimum {self._min_grf:.0f} N, "
                        f"toe-off needs <= {p.grf_off_n:g} N); {strikes}")
            return f"{head}: {strikes}"
        if not math.isfinite(self._peak_flexion) or self._peak_flexion <= p.swing_flexion_rad:
            peak = math.degrees(self._peak_flexion) if math.isfinite(self._peak_flexion) else math.nan
            return (f"{head}: knee flexion peaked at {peak:.0f} deg, a swing needs > "
                    f"{math.degrees(p.swing_flexion_rad):.0f} deg to arm the heel-strike detector; {strikes}")
        return f"{head}: {strikes}"

    def _select(self, t_s: float, g, knee: float, grf: float | None) -> None:
        if self.fallback is None or not (isinstance(t_s, (int, float)) and math.isfinite(t_s)):
            return
        if g.valid:
            self._unlocked_since = None
            self._peak_flexion, self._min_grf = -math.inf, math.inf
            if self._on_fallback:
                self._on_fallback = False
                self.events.append(StrategyEvent(t_s, "primary", self.strategy.name,
                                                 f"gait phase locked ({g.strides} heel strikes)"))
            return
        if self._unlocked_since is None:
            self._unlocked_since = t_s
        if isinstance(knee, (int, float)) and math.isfinite(knee):
            self._peak_flexion = max(self._peak_flexion, float(knee))
        if isinstance(grf, (int, float)) and math.isfinite(grf):
            self._min_grf = min(self._min_grf, float(grf))
        if not self._on_fallback and t_s - self._unlocked_since >= self.phase_lock_timeout_s:
            self._on_fallback = True
            self.events.append(StrategyEvent(t_s, "fallback", self.fallback.name,
                                             self._why_unlocked(t_s, g.state.value, g.strides)))

    def step(self, x: StageInput, gain: float = 1.0) -> AssistanceOutput:
        g = self.gait.update(x.t_s, x.knee_flexion_rad, x.vertical_grf_n)
        dt = 0.0 if self._t_prev is None else x.t_s - self._t_prev
        if isinstance(x.t_s, (int, float)) and math.isfinite(x.t_s) and (self._t_prev is None or x.t_s > self._t_prev):
            self._t_prev = x.t_s
        self._select(x.t_s, g, x.knee_flexion_rad, x.vertical_grf_n)
        return self.running.step(AssistanceInput(x.t_s, dt, phase=g.phase, phase_valid=g.valid, stance=g.stance,
                                                 knee_moment_nm=x.knee_moment_nm, activations=x.activations), gain)
