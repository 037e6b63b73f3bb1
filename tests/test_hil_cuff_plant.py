"""The real-time HIL cuff plant (hil/cuff_rom.py, hil/plant_process.py --plant cuff): the fit recovers a model it
did not write, the link obeys Newton's law, the versioned artefact is checked, the reduced plant follows flexcomp on a
held-out run (coarse mesh), and the plant process runs it with its missed-tick bookkeeping."""
from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import replace

import can
import numpy as np
import pytest

from firmware_bridge.ak_mit import (
    ENTER_MOTOR_MODE,
    decode_reply,
    encode_command,
    safe_stop_command,
)
from firmware_bridge.motor_tables import limits_for
from hil import plant_process
from hil.cuff_rom import (
    ROM_ARTIFACT_PATH,
    CuffRomParams,
    RomCuffKneePlant,
    build_rom,
    fit_cuff_rom,
    load_rom,
    maxwell_state,
    save_rom,
)
from hil.knee_plant import KneePlantParams
from hil.scenario import Scenario

KNOWN = CuffRomParams(d_ref_rad=-0.004, a0_nm=-2.0, k1_nm_per_rad=2500.0, kp_nm_per_rad2=2.0e5, kn_nm_per_rad2=5.0e4,
                      k3_nm_per_rad3=0.0, s_min_rad=-0.01, s_max_rad=0.01, c_nm_s_per_rad=25.0, k_m_nm_per_rad=800.0,
                      tau_m_s=0.05, exo_inertia_kg_m2=0.015)


def _interface(p: CuffRomParams, d: np.ndarray, dd: np.ndarray, dt: float) -> np.ndarray:
    """The model's torque, written out again here (not through the class)."""
    s = d - p.d_ref_rad
    m = maxwell_state(dd, dt, p.tau_m_s)
    return (p.a0_nm + p.k1_nm_per_rad * s + p.kp_nm_per_rad2 * np.maximum(s, 0) ** 2
            - p.kn_nm_per_rad2 * np.maximum(-s, 0) ** 2 + p.c_nm_s_per_rad * dd + p.k_m_nm_per_rad * m)


def test_fit_recovers_a_known_model_from_noisy_records():
    dt = 0.001
    t = np.arange(0, 6.0, dt)
    rng = np.random.default_rng(3)
    recs = []
    for f1, f2 in ((1.1, 4.7), (0.7, 9.3)):
        d = -0.004 + 0.004 * np.sin(2 * np.pi * f1 * t) + 0.002 * np.sin(2 * np.pi * f2 * t + 0.4)
        dd = np.gradient(d, dt)
        knee = 0.8 + 0.4 * np.sin(2 * np.pi * 1.0 * t)
        tau = _interface(KNOWN, d, dd, dt) + rng.normal(0, 0.05, t.size)
        recs.append({"exo_rad": knee + d, "exo_rad_s": np.gradient(knee, dt) + dd, "knee_rad": knee,
                     "knee_rad_s": np.gradient(knee, dt), "delivered_nm": tau})
    rom, fit = fit_cuff_rom(recs, dt, 0.015, tau_grid_s=(0.01, 0.02, 0.05, 0.1, 0.2))
    assert rom.tau_m_s == 0.05
    assert rom.k1_nm_per_rad == pytest.approx(2500.0, rel=0.05)
    assert rom.c_nm_s_per_rad == pytest.approx(25.0, rel=0.1)
    assert rom.k_m_nm_per_rad == pytest.approx(800.0, rel=0.1)
    assert fit["interface_rmse_nm"] < 0.06 and fit["interface_r2"] > 0.99


def test_backbone_increases_and_continues_linearly():
    d = np.linspace(KNOWN.d_ref_rad - 0.05, KNOWN.d_ref_rad + 0.05, 2001)
    tau = np.array([KNOWN.backbone(x) for x in d])
    assert np.all(np.diff(tau) > 0)
    far = KNOWN.d_ref_rad + KNOWN.s_max_rad
    assert KNOWN.backbone(far + 0.01) - KNOWN.backbone(far) == pytest.approx(0.01 * KNOWN.stiffness(KNOWN.s_max_rad))
    with pytest.raises(ValueError, match="k1_nm_per_rad = 0.0"):
        replace(KNOWN, k1_nm_per_rad=0.0)
    with pytest.raises(ValueError, match="c_nm_s_per_rad = -1"):
        replace(KNOWN, c_nm_s_per_rad=-1.0)


def test_link_obeys_newton_and_rests_at_the_motor_torque():
    kp = KneePlantParams(cadence_hz=1.0, flexion_min_rad=0.3, flexion_max_rad=1.3)
    plant = RomCuffKneePlant(KNOWN, kp, initial_flexion_rad=0.8)
    dt = 0.001
    for k in range(3000):
        plant.step(-5.0 + 3.0 * math.sin(2 * math.pi * 2.0 * k * dt), dt)
    tr = plant.trace()
    acc = np.gradient(tr["exo_rad_s"], dt)[10:-10]
    lhs = (tr["motor_nm"] - tr["delivered_nm"])[10:-10]
    # J q_exo'' = tau_motor - tau_delivered (the exo link carries no other load)
    assert np.sqrt(np.mean((lhs - KNOWN.exo_inertia_kg_m2 * acc) ** 2)) < 0.05 * np.sqrt(np.mean(lhs ** 2)) + 0.01
    # the rigid assumption misses exactly that inertia: the error is there, and it is small against the load
    assert 0.02 < np.sqrt(np.mean(lhs ** 2)) < 2.0


def test_versioned_artifact_round_trip_and_refusals(tmp_path):
    _rom, doc = load_rom(ROM_ARTIFACT_PATH)
    assert doc["version"] == 1 and doc["provenance"]["heldout_vs_flexcomp"]["rmse_nm"] < \
        doc["provenance"]["heldout_vs_flexcomp"]["rmse_rigid_assumption_nm"]
    p = save_rom(KNOWN, {"note": "test"}, tmp_path / "rom.json")
    assert load_rom(p)[0] == KNOWN
    bad = json.loads(p.read_text())
    bad["version"] = 2
    (tmp_path / "v2.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="artifact/version = 'cuff_rom'/2"):
        load_rom(tmp_path / "v2.json")
    with pytest.raises(ValueError, match="cannot read"):
        load_rom(tmp_path / "missing.json")


def test_reduced_plant_follows_flexcomp_on_a_heldout_run_coarse_mesh():
    from models.tissue.soft_tissue import CuffTissueParams

    tissue = CuffTissueParams(count_posterior=(3, 3, 2), count_anterior=(3, 3, 2))
    _rom, prov = build_rom(tissue, seconds=2.0)
    val = prov["heldout_vs_flexcomp"]
    print(f"\ncoarse mesh, held-out run: reduced plant vs flexcomp delivered RMSE {val['rmse_nm']:.4f} N*m, "
          f"r {val['r']:.5f}; rigid assumption {val['rmse_rigid_assumption_nm']:.4f} N*m")
    assert val["rmse_nm"] < 0.5 * val["rmse_rigid_assumption_nm"]
    assert val["r"] > 0.999


def test_plant_process_runs_the_cuff_and_counts_its_ticks(tmp_path):
    lim = limits_for("AK80-9", "V2")
    ch = f"hil-{uuid.uuid4().hex}"
    status, trace = tmp_path / "status.json", tmp_path / "trace.npz"
    result: dict = {}
    th = threading.Thread(target=lambda: result.update(plant_process.run_plant(
        "virtual", ch, motors=[{"model": "AK80-9", "firmware": "V2", "motor_id": 1, "direction": 1, "offset": 0.0}],
        duration_s=2.0, status_path=status, trace_path=trace, plant_model="cuff", zero_silence_s=0.0,
        swing=(1.0, 0.3, 1.3))))
    host = can.Bus(interface="virtual", channel=ch, receive_own_messages=False)
    try:
        th.start()
        deadline = time.monotonic() + 30.0
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        for data in (safe_stop_command(lim), ENTER_MOTOR_MODE, encode_command(lim, 0.0, 0.0, 0.0, 0.0, -4.0).data):
            host.send(can.Message(arbitration_id=1, data=data, is_extended_id=False))
            m = host.recv(0.5)
            assert m is not None and m.arbitration_id == 0
        reply = decode_reply(lim, m.data, 1)
        th.join(15)
    finally:
        host.shutdown()
    assert not th.is_alive()
    assert abs(reply.torque_nm + 4.0) <= 0.01
    st = json.loads(status.read_text())
    assert st["plant_model"] == "cuff" and st["swing"]["cadence_hz"] == 1.0
    expected = st["ticks"] + st["missed_ticks"]
    assert expected >= 2000 and st["missed_ticks_pct"] == pytest.approx(100.0 * st["missed_ticks"] / expected)
    assert set(st["tick_lateness_us"]) >= {"p50", "p99", "max"} and st["step_cost_us"]["n"] == st["ticks"]
    with np.load(trace) as z:
        assert z["plant_delivered_nm"].size == expected          # every period stepped, run or missed
        held = z["torque_nm_1"] < -3.9                            # while the drive holds -4 N*m on the exo link
        assert held.sum() > 100
        assert abs(np.mean(z["plant_delivered_nm"][held]) + 4.0) < 0.5   # the leg receives it through the cuff


def test_scenario_legs_are_checked():
    base = {"name": "x", "device": "d", "subject": "s", "calibration": "c", "duration_s": 5}
    with pytest.raises(ValueError, match="legs: names must be unique"):
        Scenario.model_validate({**base, "legs": [{"name": "a", "plant": "cuff"}, {"name": "a", "plant": "rigid"}]})
    with pytest.raises(ValueError, match="discard_s = 6.0 must be < duration_s"):
        Scenario.model_validate({**base, "discard_s": 6.0, "legs": [{"name": "a", "plant": "cuff"}]})
    with pytest.raises(ValueError, match="flexion_min_rad = 1.0 must be <"):
        Scenario.model_validate({**base, "plant": {"swing": {"flexion_min_rad": 1.0, "flexion_max_rad": 0.5}}})
    with pytest.raises(ValueError):
        Scenario.model_validate({**base, "plant": {"model": "flexcomp"}})
