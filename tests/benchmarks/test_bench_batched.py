"""Per-trial time of kinematics -> ID -> SO -> knee contact by backend and device, and frames per second.

Measured, never asserted (a shared 2-core VM).  The same 10 s walks as ``test_bench_so_vs_opensim.py``
(MyoLeg: GC5 PS ss1 tiled to 1320 frames; MyoFullBody: 1200 synthetic states), through

* ``cpu``: :class:`models.muscles.knee_contact.KinematicsToContact` (MuJoCo, float64, frame by frame in one compiled
  loop calling MuJoCo's C API, :mod:`models.muscles.compiled_chain`);
* ``warp``: :class:`models.muscles.warp_backend.WarpKinematicsToContact` (MuJoCo Warp, all frames as worlds of one
  batch, float32; the QP of every frame in one Warp launch, float64, :mod:`models.muscles.warp_qp`), on Warp's
  CUDA device when present, else its CPU device;
* ``warp-hqp``: the same with the QP on the host (``qp="host"``: the stage's solver frame by frame, warm-started
  in time), the reference of the Warp QP.

Each row: wall and CPU seconds per trial (median of the rounds after a warm-up that compiles or loads Warp's
kernels), frames per second, the ratio to the CPU backend in the same run, and ``qp s``: the wall time of the SO
QP part of the trial (the sum of ``SOTrial.solve_time_s``: per frame on the host paths, problem assembly + launch +
outputs shared by the frames on ``warp``); the table is printed at the end.
Skipped rows: ``warp`` when ``mujoco_warp`` is absent (the reason is given).
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from models.dynamics.wrenches import ExternalWrenchTrial

from test_bench_so_vs_opensim import PS, _fullbody_walk

_ROWS: dict[tuple[str, str], dict[str, float | str]] = {}


@pytest.fixture(scope="module")
def walks():
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    out = {}
    if (PS / "trc" / "PS_ngait_og_ss1.trc").exists():
        params = AnalyzeParams(75.0, 1.80, "left", muscles=False)
        kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
        res = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
        reps = int(math.ceil(10.0 / (kin.time_s[-1] - kin.time_s[0] + 1 / kin.rate_hz)))
        mk = kin.mapped
        qpos, qvel, qacc = (np.tile(x, (reps, 1)) for x in (mk.qpos, mk.qvel, mk.qacc))
        t = np.arange(qpos.shape[0]) / kin.rate_hz
        ext = [ExternalWrenchTrial(f"calcn_{s[0]}", np.tile(res.foot_force_n[s], (reps, 1)),
                                   np.tile(res.foot_cop_m[s], (reps, 1)), np.tile(res.foot_free_moment_nm[s], (reps, 1)),
                                   t) for s in ("left", "right")]
        out["myoleg"] = (kin.model, 75.0, qpos, qvel, qacc, ext, t)
    m, mass, qpos, qvel, qacc, ext, t = _fullbody_walk(1200, 120.0)
    out["myofullbody"] = (m, mass, qpos, qvel, qacc, ext, t)
    return out


@pytest.fixture(scope="module", autouse=True)
def _table():
    yield
    if not _ROWS:
        return
    head = (f"{'model':<12} {'backend':<8} {'device':<6} {'frames':>6} {'wall s':>8} {'cpu s':>8} {'frames/s':>9} "
            f"{'x cpu':>7} {'qp s':>7}")
    lines = ["", head, "-" * len(head)]
    for (model, backend), r in _ROWS.items():
        cpu_row = _ROWS.get((model, "cpu"))
        ratio = f"{r['cpu_s'] / cpu_row['cpu_s']:.2f}" if cpu_row else "-"
        lines.append(f"{model:<12} {backend:<8} {r['device']:<6} {int(r['frames']):>6} {r['wall_s']:>8.3f} "
                     f"{r['cpu_s']:>8.3f} {r['frames_per_s']:>9.0f} {ratio:>7} {r['qp_s']:>7.3f}")
    lines.append("per trial (10 s of motion), kinematics -> ID -> SO -> knee contact; x cpu = CPU-time ratio to the cpu "
                 "backend in this run; goals: <= 0.1 s MyoLeg, <= 1 s MyoFullBody")
    print("\n".join(lines))


@pytest.mark.parametrize("backend", ["cpu", "warp", "warp-hqp"])
@pytest.mark.parametrize("model_name", ["myoleg", "myofullbody"])
def test_trial_by_backend(benchmark, walks, model_name, backend):
    if model_name not in walks:
        pytest.skip(f"shared data absent at {PS}")
    model, mass, qpos, qvel, qacc, ext, t = walks[model_name]
    if backend.startswith("warp"):
        from models.dynamics.warp_backend import warp_available

        ok, why = warp_available()
        if not ok:
            pytest.skip(why)
        from models.muscles.warp_backend import WarpKinematicsToContact

        qp = "host" if backend == "warp-hqp" else "warp"
        chain = WarpKinematicsToContact(model, "left", body_mass_kg=mass, qp=qp)
        device = chain.device
    else:
        from models.muscles.knee_contact import KinematicsToContact

        chain = KinematicsToContact(model, "left", body_mass_kg=mass)
        device = "cpu"
    cpu: list[float] = []

    def timed():
        c0 = time.process_time()
        out = chain.run(qpos, qvel, qacc, ext, t)
        cpu.append(time.process_time() - c0)
        return out

    so, kc = benchmark.pedantic(timed, rounds=2, iterations=1, warmup_rounds=1)
    assert np.isfinite(kc.total_n).all()
    wall = float(benchmark.stats.stats.median)
    cpu_s = float(np.median(cpu[1:]))                  # the warm-up round compiles / loads the kernels
    row = {"device": device, "frames": t.size, "wall_s": wall, "cpu_s": cpu_s, "frames_per_s": t.size / wall,
           "qp_s": float(np.sum(so.solve_time_s))}
    _ROWS[(model_name, backend)] = row
    benchmark.extra_info.update(row)
