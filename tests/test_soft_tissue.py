"""The flexcomp cuff model against statics, Newton's second law and its own contact forces.

A coarse grid (3 x 3 x 2 vertices per block) keeps each run short; the physics checked does not depend on it.
"""
from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from models.tissue.soft_tissue import (FAT, MUSCLE, CharacterisationCase, CuffTissueParams, CuffTissueSim, bench_mjcf,
                                characterise, delivered_torque_by_contacts, delivered_torque_nm, layered_modulus,
                                pressure_cell_edges, pressure_map, pressure_nodes)
from models.tissue.soft_tissue import _cuff_contacts

COARSE = CuffTissueParams(count_posterior=(3, 3, 2), count_anterior=(3, 3, 2))


def test_layered_modulus_closed_form():
    assert layered_modulus([(0.01, 5e3)]) == pytest.approx(5e3)
    # two equal thicknesses: the harmonic mean
    assert layered_modulus([(0.01, FAT.young_pa), (0.01, MUSCLE.young_pa)]) == pytest.approx(
        2 / (1 / FAT.young_pa + 1 / MUSCLE.young_pa))
    p = CuffTissueParams()
    assert FAT.young_pa < p.young_pa("posterior") < MUSCLE.young_pa
    for bad in ([], [(0.0, 1e3)], [(0.01, math.nan)]):
        with pytest.raises(ValueError):
            layered_modulus(bad)


def test_model_has_the_flex_settings_and_pinned_inner_layers():
    m = mujoco.MjModel.from_xml_string(bench_mjcf(COARSE))
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_DISCRETE and m.opt.solver == mujoco.mjtSolver.mjSOL_CG
    shank = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "shank")
    for name, (nx, ny, nz) in (("posterior", COARSE.count_posterior), ("anterior", COARSE.count_anterior)):
        f = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_FLEX, name)
        assert m.flex_dim[f] == 3 and m.flex_vertnum[f] == nx * ny * nz
        a, n = m.flex_vertadr[f], m.flex_vertnum[f]
        bodies = m.flex_vertbodyid[a:a + n]
        pinned = [b for b in bodies if m.body_dofnum[b] == 0]
        assert len(pinned) == nx * ny                           # one whole layer
        assert all(m.body_weldid[b] == m.body_weldid[shank] for b in pinned)   # rigidly on the bone
        # the free vertices' joints carry no limits (clean default class)
        free = [b for b in bodies if m.body_dofnum[b] > 0]
        for b in free:
            j = m.body_jntadr[b]
            assert not m.jnt_limited[j]
    assert m.flex_damping[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_FLEX, "posterior")] == pytest.approx(
        COARSE.damping_s)


@pytest.mark.parametrize("torque", [-10.0, 6.0])
def test_static_load_is_delivered_in_full(torque):
    """Statics: with the knee held and the link at rest, the cuff passes the whole motor torque."""
    sim = CuffTissueSim(COARSE)
    sim.settle(0.6, 0.2)
    for _ in range(600):
        sim.step(torque, 0.6, 0.0)
    # the contacts chatter by a few tenths of a N*m: statics holds on the average over 0.3 s
    delivered, vel = [], []
    for _ in range(300):
        delivered.append(sim.step(torque, 0.6, 0.0))
        vel.append(sim.exo_velocity_rad_s)
    assert abs(np.mean(vel)) < 5e-3                           # no drift (creep would be >> this)
    assert np.mean(delivered) == pytest.approx(torque, rel=0.02, abs=0.05)
    # the fast path (knee constraint force) equals the contact-by-contact sum
    assert delivered_torque_nm(sim.model, sim.data, sim.ids) == pytest.approx(
        delivered_torque_by_contacts(sim.model, sim.data, sim.ids), abs=1e-9)
    # the link moved into the loaded block: extension (negative) compresses the posterior block
    assert math.copysign(1.0, sim.exo_rad - 0.6) == math.copysign(1.0, torque)


def test_pressure_map_carries_the_load():
    sim = CuffTissueSim(COARSE)
    sim.settle(0.6, 0.2)
    for _ in range(600):
        sim.step(-10.0, 0.6, 0.0)
    xs, ys = pressure_nodes(COARSE, (13, 5))
    maps = pressure_map(sim.model, sim.data, sim.ids, COARSE, bins=(13, 5))
    area = np.outer(*(np.diff(pressure_cell_edges(n)) for n in (xs, ys)))
    # the bilinear sharing keeps every contact's normal force: pressure x tributary area gives it back
    normal = sum(abs(float(f @ n)) for _, _, f, n in _cuff_contacts(sim.model, sim.data, sim.ids))
    assert sum((maps[s] * area).sum() for s in maps) == pytest.approx(normal, rel=1e-9)
    # moment balance about the knee: normal force times distance along the shank; the posterior plate pushes
    # towards extension, the anterior one (preload) against it; friction adds ~3 %
    x = COARSE.lever_arm_m + xs
    moment = ((maps["posterior"] - maps["anterior"]) * area).sum(axis=1) @ x
    assert moment == pytest.approx(10.0, rel=0.1)
    assert maps["posterior"].sum() > maps["anterior"].sum() > 0 and np.all(maps["posterior"] >= 0)
    # default nodes: the plate edges, about the mesh's vertex spacing apart
    xd, yd = pressure_nodes(COARSE)
    assert xd[0] == -COARSE.cuff_length_m / 2 and yd[-1] == COARSE.cuff_width_m / 2 and len(xd) >= 2


def test_motor_minus_delivered_is_link_inertia_times_acceleration():
    """Newton on the exo link: motor - delivered = J * exo acceleration, J the link inertia we built."""
    res = characterise(COARSE, [CharacterisationCase(frequency_hz=2.0, amplitude_nm=4.0, offset_nm=-5.0, cycles=3)])
    s = res[0]["signals"]
    dt = COARSE.timestep_s
    acc = (s["exo_rad_s"][2:] - s["exo_rad_s"][:-2]) / (2 * dt)
    lhs = (s["motor_nm"] - s["delivered_nm"])[1:-1]
    J = float(acc @ lhs / (acc @ acc))
    assert J == pytest.approx(COARSE.exo_inertia_kg_m2, rel=0.1)
    # the rigid assumption is off by that inertial torque, and the tissue absorbs energy (passive, damped)
    assert res[0]["rmse_rigid_nm"] > 0.05
    assert res[0]["energy_absorbed_j_per_cycle"] > 0
    assert 0.9 < res[0]["gain"] < 1.1


def test_more_damping_absorbs_more_energy():
    case = [CharacterisationCase(frequency_hz=4.0, amplitude_nm=5.0, offset_nm=-6.0, cycles=3)]
    low = characterise(CuffTissueParams(count_posterior=(3, 3, 2), count_anterior=(3, 3, 2), damping_s=0.003), case)
    high = characterise(CuffTissueParams(count_posterior=(3, 3, 2), count_anterior=(3, 3, 2), damping_s=0.03), case)
    assert high[0]["energy_absorbed_j_per_cycle"] > low[0]["energy_absorbed_j_per_cycle"] > 0


@pytest.mark.parametrize("kw,field", [({"poisson": 0.5}, "poisson"), ({"lever_arm_m": -0.1}, "lever_arm_m"),
                                      ({"count_posterior": (1, 3, 2)}, "count_posterior"),
                                      ({"preload_m": 0.01}, "preload_m"),
                                      ({"contact_timeconst_s": 0.001}, "contact_timeconst_s")])
def test_parameters_rejected_with_name(kw, field):
    with pytest.raises(ValueError, match=field):
        CuffTissueParams(**kw)
