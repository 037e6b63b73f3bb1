"""Per-frame split of the compiled ID + SO loop on GC5 PS ss1 (issue 22): run ``.venv/bin/python
tests/benchmarks/profile_so_frame_split.py``.

The chain's calls in its order (:class:`models.muscles.compiled_chain.CompiledChain`: the kinematics kernel, the
real ``id_frame``, then ``so_frame``'s pieces) with ``clock_gettime`` timers between, min over 15 passes; the MuJoCo
calls inside ``id_frame`` (and the ``mj_kinematics`` the kernel replaces) are timed on the same state just before;
the tendon kernel (:mod:`models.muscles.compiled_tendon`; the chain's ``exact=False`` form, ``EXACT=1`` in the
environment: the bit-identical one) and then the ``mj_tendon`` it replaces, on the same state.
A measurement script (not collected by pytest); the activations are checked equal to ``CompiledChain.run``'s.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.dynamics.wrenches import ExternalWrenchTrial
from models.io.lab_files import shared_data_dir
from models.muscles.compiled_chain import CompiledChain
from models.muscles.static_optimization import SOParams, StaticOptimization
from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

PS = shared_data_dir() / "GC5_PS"
params = AnalyzeParams(75.0, 1.80, "left", muscles=False)
kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
res = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
ext = [ExternalWrenchTrial(f"calcn_{s[0]}", res.foot_force_n[s], res.foot_cop_m[s], res.foot_free_moment_nm[s],
                           res.time_s) for s in ("left", "right")]
m, mk = kin.model, kin.mapped
chain = CompiledChain(StaticOptimization(m, SOParams()), InverseDynamics(m, InverseDynamicsParams()))
import numba as nb

from models.dynamics import mj_capi as capi
from models.dynamics.compiled_id import id_frame, id_pack, mj_views
from models.dynamics.compiled_kinematics import kinematics_frame
from models.muscles import compiled_so as cs
from models.muscles.compiled_tendon import tendon_frame, tendon_views
from models.muscles.qp_kernels import (
    assemble,
    couplings_kernel,
    frame_outputs,
    solve_qp,
)
from models.muscles.static_optimization import STATUS_INVALID_INPUT

NAMES = ["ID: id_frame total (after the kernel)", "  (mj_kinematics, replaced by the kernel)", "  of which mj_comPos", "  of which mj_crb",
         "  of which mj_comVel+mj_passive", "  of which mj_inverseSkip",
         "SO: couplings + state copies", "SO: mj_tendon", "SO: mj_transmission", "SO: moment arms + actuator velocities",
         "SO: muscle forces (mju_muscleGain/Bias)", "QP: assemble", "QP: solve (dual Newton)", "QP: frame outputs", "ID: kinematics kernel",
         "SO: tendon kernel (replaces mj_tendon)"]
@nb.njit
def run(mi, m, dd, D, TV, K, IO, S, O, KK, KV, qpos, qvel, qacc, ts, T):
    for i in range(qpos.shape[0]):
        for k in range(qpos.shape[1]): D.qpos[k] = qpos[i, k]
        for k in range(qvel.shape[1]):
            D.qvel[k] = qvel[i, k]; D.qacc[k] = qacc[i, k]
        # the MuJoCo calls of id_frame alone (same state), then id_frame itself
        t = capi.clock_ns(ts)
        capi.mj_kinematics(mi, dd); t1 = capi.clock_ns(ts); T[1] += t1 - t; t = t1
        capi.mj_comPos(mi, dd); t1 = capi.clock_ns(ts); T[2] += t1 - t; t = t1
        capi.mj_crb(mi, dd); t1 = capi.clock_ns(ts); T[3] += t1 - t; t = t1
        capi.mj_comVel(mi, dd); capi.mj_passive(mi, dd); t1 = capi.clock_ns(ts); T[4] += t1 - t; t = t1
        capi.mj_inverseSkip(mi, dd, capi.STAGE_VEL, 1); t1 = capi.clock_ns(ts); T[5] += t1 - t; t = t1
        kinematics_frame(KK, KV); t1 = capi.clock_ns(ts); T[14] += t1 - t; t = t1
        id_frame(mi, dd, D, K, IO, i, True); t1 = capi.clock_ns(ts); T[0] += t1 - t; t = t1
        q = qpos[i]; qd = qvel[i]; tau = IO.cf[i]
        for k in range(q.shape[0]):
            D.qpos[k] = q[k]; S.q_before[k] = q[k]
        for k in range(qd.shape[0]): D.qvel[k] = qd[k]
        for k in range(tau.shape[0]): S.tau[k] = tau[k]
        couplings_kernel(D.qpos, D.qvel, S.tau, S.apply, S.dep_qadr, S.dep_dof, S.ind_qadr, S.ind_dof, S.x0, S.y0, S.coef, S.dof_factor)
        t1 = capi.clock_ns(ts); T[6] += t1 - t; t = t1
        if S.ten_on:   # the kernel first (where the chain runs it), then mj_tendon on the same state
            tendon_frame(S.ten, TV)
        t1 = capi.clock_ns(ts); T[15] += t1 - t; t = t1
        capi.mj_tendon(m, dd); t1 = capi.clock_ns(ts); T[7] += t1 - t
        if S.ten_on:   # the kernel's values again (untimed): what the chain's SO reads
            tendon_frame(S.ten, TV)
        t = capi.clock_ns(ts)
        capi.mj_transmission(m, dd); t1 = capi.clock_ns(ts); T[8] += t1 - t; t = t1
        cs.moment_arms_velocity(D, S); t1 = capi.clock_ns(ts); T[9] += t1 - t; t = t1
        cs.muscle_forces(D, S); t1 = capi.clock_ns(ts); T[10] += t1 - t; t = t1
        assemble(S.R, S.rcnt, S.ridx, S.F1, D.act_force, S.mus, S.tau, S.solved, S.pos, S.gain, S.passive, S.Ct, S.nzcnt, S.nzidx, S.env, S.b)
        t1 = capi.clock_ns(ts); T[11] += t1 - t; t = t1
        solve_qp(S.Ct, S.nzcnt, S.nzidx, S.env, S.b, S.hp, S.lam, i == 0, S.max_iter, S.tol, S.a, S.g, S.r, S.u, S.cls, S.delta, S.bkey, S.bval, S.H, S.d, S.fidx)
        t1 = capi.clock_ns(ts); T[12] += t1 - t; t = t1
        frame_outputs(S.R, S.rcnt, S.ridx, S.gain, S.passive, S.a, S.lam, S.hp, S.P, S.tau, S.solved, S.is_solved, O.act[i], O.force[i], O.mom[i], O.res[i], O.resid[i])
        t1 = capi.clock_ns(ts); T[13] += t1 - t; t = t1
n = mk.qpos.shape[0]
EXACT = os.environ.get("EXACT") == "1"   # EXACT=1: the bit-identical tendon kernel (exact=True) in place of the chain's
so, inv = chain.so, chain.inv
best = np.full(len(NAMES), 1e18)
for r in range(15):
    so.reset()
    S, O = cs.so_const(so, STATUS_INVALID_INPUT, tendon_exact=EXACT), cs.so_outputs(so, n)   # the chain's
    K, IO, _ = id_pack(inv, ext, n, kin.time_s)
    T = np.zeros(len(NAMES))
    run(capi.address(inv.model), capi.address(so.model), capi.address(so.data), mj_views(so.data), tendon_views(so.data), K, IO, S, O, chain._KK, chain._KV, mk.qpos, mk.qvel, mk.qacc, capi.new_timespec(), T)
    best = np.minimum(best, T)
# the chain runs the tendon kernel instead of mj_tendon where chain.tendon_kernel
tot = best[0] + best[6:].sum() - (best[7] if chain.tendon_kernel else best[15])
for nm, v in zip(NAMES, best):
    print(f"{nm:42s} {v / n / 1e3:6.2f} us/frame")
print(f"{'sum (ID + SO, as the chain runs)':42s} {tot / n / 1e3:6.2f} us/frame  (tendon kernel in use: {chain.tendon_kernel})")
jm, tr, _ = chain.run(mk.qpos, mk.qvel, mk.qacc, ext, kin.time_s)
print("same activations as CompiledChain.run:", np.array_equal(O.act, tr.activation))
