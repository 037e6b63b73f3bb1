"""Per-frame cost of the biomechanics chain (IK + GRF + ID), each against a bare ``mj_inverse`` in the same run.

Speed is measured, never asserted (a shared 2-core VM): the figure to quote is the ratio to the reference
(``extra_info["x_reference"]``, and the table printed at the end of the module).  Every benchmark times single
frames (``benchmark.pedantic``, one frame per round, a fixed number of rounds), so its median is the median
per-frame cost and its p99 the slow tail.

MyoLeg, GC5 PS ss1 (132 frames at 125 Hz), set up as ``models.trial_analysis.trial_kinematics`` does (MyoLeg with
the segment lengths of ``GC5.osim``, masses to 75 kg, the GC5 marker set).  Frames are visited back and forth
(0, 1, ..., N-1, N-2, ..., 1, 0, ...) so that consecutive frames stay neighbours and the IK warm start and the
causal filters never see a jump back to the start of the trial.

* ``reference``: ``mujoco.mj_inverse`` on the inverse-dynamics stage's model (the copy with constraints, actuation,
  springs/dampers and armature off) with the frame's ``qpos, qvel, qacc`` copied in (the same copies ID makes).
* ``mj_inverse (as loaded)``: the same on the subject model as loaded (constraints and muscles on), for scale.
* ``IK step``: ``InverseKinematics.step``, warm-started (IKParams() defaults, as ``trial_kinematics``).
* ``GRF step``: ``GroundReactionEstimator.step``, causal, on the IK poses of the trial.
* ``ID step``: ``InverseDynamics.step`` (which since issue 22 skips ``mj_inverse``'s tendon, transmission, collision
  and sensor passes, so it can come out below the reference) with the smoothed ``qpos, qvel, qacc`` of ``trial_kinematics`` and two foot
  wrenches (right and left calcaneus) from a causal GRF replay; ``reaction_bodies=("tibia_l",)`` as
  ``trial_dynamics``.
* ``IK + GRF + ID``: the three per frame as a real-time chain would run them: IK on the frame's markers, GRF on the
  IK pose, velocity and acceleration by backward differences of the IK pose (``mj_differentiatePos``; a real-time
  smoother would replace them, at a few microseconds), the GRF output copied into the two foot wrenches, ID.

The issue's goal, at most 1 ms per frame for MyoLeg IK + GRF + ID, is printed as met or not, never asserted.

MyoFullBody (no marker set exists for it): ``mj_inverse`` (reference, ID-stage model), ``InverseDynamics.step``
(two foot wrenches of half the body weight each), and ``mj_inverse``/``mj_forward`` on the model as loaded, over
64 random but valid states: ``qpos0`` plus small random offsets of every independent hinge/slide joint clipped to
its range, a slightly tilted root, coupled joints set from their polynomials (``CoordinateCouplings.apply``).
"""
from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from models.grf.estimator import GroundReactionEstimator
from models.grf.params import GroundReactionParams
from models.grf.records import CoordinatesFrame, CoordinatesTrial
from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.dynamics.wrenches import ExternalWrench
from models.kinematics.ik_types import IKParams
from models.kinematics.inverse_kinematics import InverseKinematics
from models.kinematics.marker_matching import match_marker_names
from models.io.axes import opensim_to_z_up
from models.io.lab_files import read_trial, shared_data_dir
from models.body.markerset import from_opensim_markerset
from models.trial_analysis import STANDARD_GRAVITY_M_S2, AnalyzeParams, trial_kinematics

PS = shared_data_dir() / "GC5_PS"
TRC = PS / "trc" / "PS_ngait_og_ss1.trc"
OSIM = PS / "model" / "GC5.osim"
SUBJECT = AnalyzeParams(75.0, 1.80, "left")        # GC5 PS, as tests/test_trial_analysis.py
GOAL_S = 1e-3                                      # the issue: <= 1 ms per frame for MyoLeg IK + GRF + ID
PASSES = 8                                         # back-and-forth passes over the trial per benchmark
WARMUP = 20                                        # frames run before timing starts
FB_STATES = 64                                     # random MyoFullBody states, cycled
FB_ROUNDS = 1000

LEG = "biomech MyoLeg GC5 PS ss1"
FB = "biomech MyoFullBody random"

_ROWS: dict[str, dict[str, dict]] = {}             # group -> variant -> figures (module-wide, for the table)


# ------------------------------------------------------------------ recording and the table
def _record(benchmark, hot_results, group: str, variant: str, **extra) -> None:
    """Median/mean/p99 per frame into extra_info, the ratio to the group's reference, and the module's table."""
    if benchmark.stats is None:                    # --benchmark-disable: the body ran once, nothing was timed
        return
    st = benchmark.stats.stats
    data = np.asarray(st.data, dtype=float) if getattr(st, "data", None) else np.array([st.median])
    row = {"median_s": float(st.median), "mean_s": float(st.mean), "p99_s": float(np.percentile(data, 99)),
           "max_s": float(st.max), "rounds": int(st.rounds)}
    rows = _ROWS.setdefault(group, {})
    rows[variant] = row
    benchmark.extra_info["median_us"] = row["median_s"] * 1e6
    benchmark.extra_info["mean_us"] = row["mean_s"] * 1e6
    benchmark.extra_info["p99_us"] = row["p99_s"] * 1e6
    ref = rows.get("reference")
    if ref:
        row["x_ref"] = row["median_s"] / ref["median_s"]
        benchmark.extra_info["x_reference"] = row["x_ref"]
        benchmark.extra_info["reference_median_us"] = ref["median_s"] * 1e6
    benchmark.extra_info.update(extra)
    hot_results.setdefault(group, {})[variant] = row["median_s"]   # the suite's "hot paths" summary too


def _table() -> list[str]:
    head = f"{'group':<27} {'stage':<30} {'median us':>9} {'mean us':>9} {'p99 us':>9} {'x mj_inverse':>12}"
    lines = [head, "-" * len(head)]
    for group, variants in _ROWS.items():
        for name, r in variants.items():
            ratio = f"{r['x_ref']:.2f}" if "x_ref" in r else ("1.00" if name == "reference" else "-")
            label = "mj_inverse (reference)" if name == "reference" else name
            lines.append(f"{group:<27} {label:<30} {r['median_s'] * 1e6:>9.1f} {r['mean_s'] * 1e6:>9.1f} "
                         f"{r['p99_s'] * 1e6:>9.1f} {ratio:>12}")
    leg = _ROWS.get(LEG, {})
    stages = [leg.get(k) for k in ("IK step", "GRF step", "ID step")]
    if all(stages):
        s = sum(r["median_s"] for r in stages)
        lines.append(f"{LEG:<27} {'sum of the 3 stage medians':<30} {s * 1e6:>9.1f}")
    chain = leg.get("IK + GRF + ID")
    if chain:
        ok = chain["median_s"] <= GOAL_S
        lines.append(f"goal <= {GOAL_S * 1e3:g} ms per frame for MyoLeg IK + GRF + ID: median "
                     f"{chain['median_s'] * 1e3:.3f} ms -> {'MET' if ok else 'NOT MET'} (mean {chain['mean_s'] * 1e3:.3f} ms, "
                     f"p99 {chain['p99_s'] * 1e3:.3f} ms{', p99 over the goal' if ok and chain['p99_s'] > GOAL_S else ''})")
    lines.append("us per frame, one frame per round; x mj_inverse = median / the reference's median in the same run")
    return lines


@pytest.fixture(scope="module", autouse=True)
def _print_table(request):
    yield
    if not _ROWS:
        return
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    write = tr.write_line if tr is not None else print
    write("")
    write("biomechanics per-frame cost (this run)")
    for line in _table():
        write(line)
    _ROWS.clear()


def _pingpong(n: int) -> np.ndarray:
    """0, 1, ..., n-1, n-2, ..., 1: cycling it keeps consecutive frames neighbours."""
    return np.r_[np.arange(n), np.arange(n - 2, 0, -1)].astype(np.int64)


class _Cycle:
    """Next frame index of a back-and-forth walk over the trial."""

    def __init__(self, n: int) -> None:
        self.seq = _pingpong(n).tolist()
        self.i = 0

    def first(self) -> int:
        return self.seq[0]

    def __call__(self) -> int:
        self.i += 1
        if self.i == len(self.seq):
            self.i = 0
        return self.seq[self.i]


# ------------------------------------------------------------------ MyoLeg on GC5 PS ss1
@pytest.fixture(scope="module")
def leg():
    """The trial_kinematics set-up, the IK inputs in marker-set order, and the causal GRF replay for ID."""
    if not (TRC.is_file() and OSIM.is_file()):
        pytest.skip(f"shared GC5 PS data absent ({TRC} / {OSIM}; set EXO_SHARED_DATA)")
    kin = trial_kinematics(TRC, OSIM, SUBJECT)
    model = kin.model
    mset = from_opensim_markerset(OSIM, model)
    ik = InverseKinematics(model, mset, IKParams())
    trial = read_trial(TRC)
    trial = getattr(trial, "markers", trial)
    pos = opensim_to_z_up(np.asarray(trial.positions_m, dtype=float))
    n = pos.shape[0]
    markers = np.full((n, len(ik.marker_names), 3), np.nan)
    for i, j in match_marker_names(ik.marker_names, list(trial.marker_names)).items():
        markers[:, i] = pos[:, j]
    # the .trc time column is rounded to 1 ms (steps of 8 and 9 ms): take the header's rate (120 Hz), not the
    # median step (which says 125 Hz), and give the batch floor estimate evenly spaced time stamps
    t = np.asarray(trial.time_s, dtype=float)
    rate = float(getattr(trial, "rate_hz", 0.0) or (n - 1) / (t[-1] - t[0]))
    even = CoordinatesTrial(time_s=np.arange(n) / rate, qpos=kin.ik.qpos)
    floor = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=SUBJECT.mass_kg), model).run(even).floor_height_m
    grf_params = GroundReactionParams(subject_mass_kg=SUBJECT.mass_kg, causal=True, sample_rate_hz=rate,
                                      floor_height_m=floor)
    id_params = InverseDynamicsParams(reaction_bodies=(f"tibia_{SUBJECT.side[0]}",), gravity_m_s2=STANDARD_GRAVITY_M_S2)
    # the foot wrenches of every frame, from a causal replay on the IK poses (what ID would get in real time)
    est = GroundReactionEstimator(grf_params, model)
    est.reset()
    g = est.new_frame()
    ik_q = np.ascontiguousarray(kin.ik.qpos)
    wrenches = []
    for k in range(n):
        est.step(CoordinatesFrame(qpos=ik_q[k]), g)
        wrenches.append([ExternalWrench(f"calcn_{s[0]}", g.force_n[f].copy(), g.cop_m[f].copy(),
                                        np.array([0.0, 0.0, g.free_moment_nm[f]])) for f, s in enumerate(("right", "left"))])
    loaded = [w for ws in wrenches for w in ws if np.any(w.force_n)]
    assert loaded and all(np.isfinite(w.point_m).all() for w in loaded), "a loaded foot without a CoP"
    return dict(kin=kin, model=model, mset=mset, markers=markers, n=n, rate=rate, grf_params=grf_params,
                id_params=id_params, ik_q=ik_q, wrenches=wrenches,
                q=np.ascontiguousarray(kin.mapped.qpos), qd=np.ascontiguousarray(kin.mapped.qvel),
                qdd=np.ascontiguousarray(kin.mapped.qacc))


def _rounds(n: int) -> int:
    return PASSES * len(_pingpong(n))


@pytest.mark.benchmark(group=LEG)
@pytest.mark.parametrize("variant", ["reference", "mj_inverse (as loaded)"])
def test_leg_mj_inverse(benchmark, hot_results, leg, variant):
    src = InverseDynamics(leg["model"], leg["id_params"]).model if variant == "reference" else leg["model"]
    m, d = src, mujoco.MjData(src)
    q, qd, qdd = leg["q"], leg["qd"], leg["qdd"]
    nxt = _Cycle(leg["n"])
    qpos, qvel, qacc = d.qpos, d.qvel, d.qacc
    inverse = mujoco.mj_inverse

    def fn():
        k = nxt()
        qpos[:] = q[k]
        qvel[:] = qd[k]
        qacc[:] = qdd[k]
        inverse(m, d)

    benchmark.pedantic(fn, rounds=_rounds(leg["n"]), warmup_rounds=WARMUP, iterations=1)
    assert np.isfinite(d.qfrc_inverse).all()
    _record(benchmark, hot_results, LEG, variant, nv=int(m.nv), frames=leg["n"])


@pytest.mark.benchmark(group=LEG)
def test_leg_ik_step(benchmark, hot_results, leg):
    ik = InverseKinematics(leg["model"], leg["mset"], IKParams())
    out = ik.new_frame()
    markers = leg["markers"]
    nxt = _Cycle(leg["n"])
    ik.step(markers[nxt.first()], out)              # the cold start, untimed
    iters, rms, status = [], [], []
    step = ik.step

    def fn():
        step(markers[nxt()], out)
        iters.append(out.iterations)
        rms.append(out.residual_rms_m)
        status.append(int(out.status))

    benchmark.pedantic(fn, rounds=_rounds(leg["n"]), warmup_rounds=WARMUP, iterations=1)
    cold = sum(1 for s in status if s & 16)
    not_conv = sum(1 for s in status if s & 4)
    assert np.isfinite(rms).all() and np.nanmedian(rms) < 0.03, "IK did not track the markers"
    _record(benchmark, hot_results, LEG, "IK step", iterations_mean=float(np.mean(iters)),
            iterations_max=int(np.max(iters)), cold_starts=cold, not_converged=not_conv,
            rms_median_mm=float(np.median(rms) * 1e3), markers=len(ik.marker_names),
            markers_used=int(out.markers_used))


@pytest.mark.benchmark(group=LEG)
def test_leg_grf_step(benchmark, hot_results, leg):
    est = GroundReactionEstimator(leg["grf_params"], leg["model"])
    est.reset()
    out = est.new_frame()
    frames = [CoordinatesFrame(qpos=q) for q in leg["ik_q"]]
    nxt = _Cycle(leg["n"])
    est.step(frames[nxt.first()], out)              # primes the filters, untimed
    step = est.step

    def fn():
        step(frames[nxt()], out)

    benchmark.pedantic(fn, rounds=_rounds(leg["n"]), warmup_rounds=WARMUP, iterations=1)
    assert out.valid and np.isfinite(out.force_n).all()
    _record(benchmark, hot_results, LEG, "GRF step", rate_hz=leg["rate"])


@pytest.mark.benchmark(group=LEG)
def test_leg_id_step(benchmark, hot_results, leg):
    inv = InverseDynamics(leg["model"], leg["id_params"])
    out = inv.allocate_frame()
    q, qd, qdd, ws = leg["q"], leg["qd"], leg["qdd"], leg["wrenches"]
    nxt = _Cycle(leg["n"])
    step = inv.step
    bad = []

    def fn():
        k = nxt()
        step(q[k], qd[k], qdd[k], ws[k], out)
        if not math.isfinite(out.coordinate_force[0]):
            bad.append(k)

    benchmark.pedantic(fn, rounds=_rounds(leg["n"]), warmup_rounds=WARMUP, iterations=1)
    assert not bad and np.isfinite(out.generalized_force).all(), f"NaN moments at frames {sorted(set(bad))[:5]}"
    _record(benchmark, hot_results, LEG, "ID step", external_wrenches=2)


@pytest.mark.benchmark(group=LEG)
def test_leg_chain(benchmark, hot_results, leg):
    model = leg["model"]
    ik = InverseKinematics(model, leg["mset"], IKParams())
    est = GroundReactionEstimator(leg["grf_params"], model)
    inv = InverseDynamics(model, leg["id_params"])
    ikf, grf, jm = ik.new_frame(), est.new_frame(), inv.allocate_frame()
    est.reset()
    wr = [ExternalWrench.zeros("calcn_r"), ExternalWrench.zeros("calcn_l")]
    markers, h = leg["markers"], 1.0 / leg["rate"]
    inv_h = 1.0 / h
    q_prev, qd, qd_prev, qdd = np.zeros(model.nq), np.zeros(model.nv), np.zeros(model.nv), np.zeros(model.nv)
    nxt = _Cycle(leg["n"])
    ik.step(markers[nxt.first()], ikf)              # cold start, untimed
    est.step(ikf, grf)
    q_prev[:] = ikf.qpos
    ik_step, grf_step, id_step = ik.step, est.step, inv.step
    diff = mujoco.mj_differentiatePos
    wr_r, wr_l = wr
    bad = [0]

    def fn():
        ik_step(markers[nxt()], ikf)
        grf_step(ikf, grf)
        q = ikf.qpos
        diff(model, qd, h, q_prev, q)               # backward differences of the IK pose
        np.subtract(qd, qd_prev, out=qdd)
        np.multiply(qdd, inv_h, out=qdd)
        q_prev[:] = q
        qd_prev[:] = qd
        f, p, t = grf.force_n, grf.cop_m, grf.free_moment_nm
        wr_r.force_n[:] = f[0]
        wr_r.point_m[:] = p[0]
        wr_r.free_moment_nm[2] = t[0]
        wr_l.force_n[:] = f[1]
        wr_l.point_m[:] = p[1]
        wr_l.free_moment_nm[2] = t[1]
        id_step(q, qd, qdd, wr, jm)
        if not math.isfinite(jm.coordinate_force[0]):
            bad[0] += 1

    benchmark.pedantic(fn, rounds=_rounds(leg["n"]), warmup_rounds=WARMUP, iterations=1)
    assert bad[0] == 0, f"{bad[0]} frames gave NaN moments"
    _record(benchmark, hot_results, LEG, "IK + GRF + ID", goal_us=GOAL_S * 1e6)
    if benchmark.stats is not None:
        benchmark.extra_info["goal_met_median"] = bool(benchmark.stats.stats.median <= GOAL_S)


# ------------------------------------------------------------------ MyoFullBody, random valid states
@pytest.fixture(scope="module")
def fullbody():
    from models.body.registry import load_model

    model = load_model("myofullbody").model
    inv = InverseDynamics(model, InverseDynamicsParams())
    cpl = inv.couplings
    rng = np.random.default_rng(20240601)
    dep = {c.dep_joint for c in cpl.couplings}
    free = [j for j in range(model.njnt) if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE)]
    one_dof = [j for j in range(model.njnt) if j not in dep
               and int(model.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))]
    indep = cpl.independent_dofs
    d = mujoco.MjData(model)
    mass = float(np.sum(model.body_mass))
    g = float(np.linalg.norm(model.opt.gravity))
    feet = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in ("calcn_r", "calcn_l")]
    Q, QD, QDD, W = [], [], [], []
    for _ in range(FB_STATES):
        q = np.array(model.qpos0, dtype=float)
        for j in one_dof:
            a = int(model.jnt_qposadr[j])
            hinge = int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_HINGE)
            q[a] += rng.uniform(-0.15, 0.15) if hinge else rng.uniform(-0.005, 0.005)
            if model.jnt_limited[j]:
                q[a] = min(max(q[a], model.jnt_range[j, 0]), model.jnt_range[j, 1])
        for j in free:                                   # tilt the root a little
            a = int(model.jnt_qposadr[j])
            tilt = np.zeros(4)
            axis = rng.normal(size=3)
            mujoco.mju_axisAngle2Quat(tilt, axis / np.linalg.norm(axis), rng.uniform(0.0, 0.1))
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, q[a + 3:a + 7].copy(), tilt)
            q[a + 3:a + 7] = quat
        qd = np.zeros(model.nv)
        qdd = np.zeros(model.nv)
        qd[indep] = rng.normal(0.0, 0.5, indep.size)
        qdd[indep] = rng.normal(0.0, 2.0, indep.size)
        cpl.apply(q, qd, qdd)
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d)
        W.append([ExternalWrench(model.body(b).name, np.array([0.0, 0.0, 0.5 * mass * g]),
                                 d.xpos[b].copy(), np.zeros(3)) for b in feet if b >= 0])
        Q.append(q)
        QD.append(qd)
        QDD.append(qdd)
    return dict(model=model, Q=np.array(Q), QD=np.array(QD), QDD=np.array(QDD), W=W)


class _Round:
    def __init__(self, n: int) -> None:
        self.n, self.i = n, -1

    def __call__(self) -> int:
        self.i += 1
        if self.i == self.n:
            self.i = 0
        return self.i


@pytest.mark.benchmark(group=FB)
@pytest.mark.parametrize("variant", ["reference", "InverseDynamics.step", "mj_inverse (as loaded)",
                                     "mj_forward (as loaded)"])
def test_fullbody(benchmark, hot_results, fullbody, variant):
    model, Q, QD, QDD, W = fullbody["model"], fullbody["Q"], fullbody["QD"], fullbody["QDD"], fullbody["W"]
    nxt = _Round(len(Q))
    extra = dict(nq=int(model.nq), nv=int(model.nv), muscles=int(model.nu), states=len(Q))
    if variant == "InverseDynamics.step":
        inv = InverseDynamics(model, InverseDynamicsParams())
        out = inv.allocate_frame()
        step = inv.step

        def fn():
            k = nxt()
            step(Q[k], QD[k], QDD[k], W[k], out)

        benchmark.pedantic(fn, rounds=FB_ROUNDS, warmup_rounds=WARMUP, iterations=1)
        assert np.isfinite(out.generalized_force).all()
        extra["external_wrenches"] = len(W[0])
    else:
        m = InverseDynamics(model, InverseDynamicsParams()).model if variant == "reference" else model
        d = mujoco.MjData(m)
        qpos, qvel, qacc = d.qpos, d.qvel, d.qacc
        if variant == "mj_forward (as loaded)":
            forward = mujoco.mj_forward

            def fn():
                k = nxt()
                qpos[:] = Q[k]
                qvel[:] = QD[k]
                forward(m, d)
        else:
            inverse = mujoco.mj_inverse

            def fn():
                k = nxt()
                qpos[:] = Q[k]
                qvel[:] = QD[k]
                qacc[:] = QDD[k]
                inverse(m, d)

        benchmark.pedantic(fn, rounds=FB_ROUNDS, warmup_rounds=WARMUP, iterations=1)
        assert np.isfinite(d.qfrc_inverse if "inverse" in variant or variant == "reference" else d.qacc).all()
        extra["contacts_last_state"] = int(d.ncon)
    _record(benchmark, hot_results, FB, variant, **extra)
