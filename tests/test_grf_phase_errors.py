"""Where the kinematics-only vertical GRF error comes from (models/grf/phase_errors.py): closed-form cases, and the
shared trials' per-phase figures as regression bounds (measured 2026-12-07 with ``exo validate``, plus margin)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.grf.phase_errors import PHASES, contact_event_errors_ms, phase_breakdown, stance_phases
from models.io.lab_files import shared_data_dir

DATA = shared_data_dir()
BW = 700.0


def _steps(n: int = 40):
    """Foot of interest on its plate on frames 5..34; the other foot on frames 0..10 and 28..39 (both on plates).
    Vertical forces: the trailing foot's share falls linearly over each double support, total 1 BW."""
    loaded = np.zeros(n, bool)
    loaded[5:35] = True
    other = np.zeros(n, bool)
    other[:11] = True
    other[28:] = True
    share = np.where(loaded, 1.0, 0.0)
    share[5:11] = np.linspace(0.1, 0.9, 6)          # loading: this foot takes over
    share[28:35] = np.linspace(0.9, 0.1, 7)         # trailing: it hands over
    return loaded, other, share * BW, (1.0 - share) * BW * other


def test_phases_follow_the_other_foots_contact():
    loaded, other, _, _ = _steps()
    ph = stance_phases(loaded, other)
    assert set(ph[:5]) == {""} and set(ph[35:]) == {""}
    assert list(ph[5:11]) == [PHASES[0]] * 6
    assert list(ph[11:19]) == [PHASES[1]] * 8 and list(ph[19:28]) == [PHASES[2]] * 9
    assert list(ph[28:35]) == [PHASES[3]] * 7
    assert set(stance_phases(loaded, other, min_frames=31)) == {""}


def test_a_heavy_total_is_all_total_part_and_a_wrong_split_all_split_part():
    loaded, other, fz, fo = _steps()
    # the estimate's whole-body force 10 % low, the split right: error = -0.1 * plate force, all "total part"
    b = phase_breakdown(0.9 * fz, 0.9 * fo, fz, fo, other, BW)
    for name in PHASES:
        sel = stance_phases(loaded, other) == name
        want = 100 * math.sqrt(np.mean((0.1 * fz[sel]) ** 2)) / BW
        assert b[name].rmse == pytest.approx(want, rel=1e-12)
        assert b[name].total_part_rms == pytest.approx(want, rel=1e-12)
        assert b[name].split_part_rms == pytest.approx(0.0, abs=1e-12)
        assert b[name].bias < 0
        if name.startswith("single"):                  # a constant 1 BW there: the bias is the whole error
            assert b[name].bias == pytest.approx(-want, rel=1e-12)
    assert sum(p.mse_fraction for p in b.values()) == pytest.approx(1.0)
    # the total right, the terminal double support handed over 2 frames late: all "split part", only there
    ez, eo = fz.copy(), fo.copy()
    ez[28:35] = np.r_[1.0, 1.0, np.linspace(0.9, 0.1, 7)[:5]] * BW
    eo[28:35] = BW - ez[28:35]
    b = phase_breakdown(ez, eo, fz, fo, other, BW)
    err = (ez - fz)[28:35]
    assert b[PHASES[3]].rmse == pytest.approx(100 * math.sqrt(np.mean(err ** 2)) / BW, rel=1e-12)
    assert b[PHASES[3]].split_part_rms == pytest.approx(b[PHASES[3]].rmse, rel=1e-12)
    assert b[PHASES[3]].total_part_rms == pytest.approx(0.0, abs=1e-12)
    assert b[PHASES[3]].bias > 0 and b[PHASES[3]].mse_fraction == pytest.approx(1.0)
    for name in PHASES[:3]:
        assert b[name].rmse == 0.0


def test_a_foot_off_the_plates_leaves_the_parts_undefined_there():
    _, other, fz, fo = _steps()
    fo_plate = fo.copy()
    fo_plate[28:] = 0.0                 # the other foot lands beside the plates: they cannot see it
    b = phase_breakdown(fz, fo, fz, fo_plate, other, BW)
    assert b[PHASES[3]].frames == 7 and math.isnan(b[PHASES[3]].total_part_rms)
    assert math.isnan(b[PHASES[3]].split_part_rms)
    assert b[PHASES[0]].total_part_rms == 0.0       # the first double support is on the plates


def test_contact_event_errors():
    t = np.arange(50) / 100.0
    plate = np.zeros(50, bool)
    plate[10:30] = True
    plate[40:] = True                  # cut by the end of the trial: its offset is unknown
    est = np.zeros(50, bool)
    est[13:29] = True                  # 30 ms late on, 10 ms early off
    est[41:] = True
    ev = contact_event_errors_ms(est, plate, t)
    assert ev[0]["plate_onset_s"] == pytest.approx(0.10)
    assert ev[0]["onset_ms"] == pytest.approx(30.0) and ev[0]["offset_ms"] == pytest.approx(-10.0)
    assert ev[1]["onset_ms"] == pytest.approx(10.0) and math.isnan(ev[1]["offset_ms"])
    none = contact_event_errors_ms(np.zeros(50, bool), plate, t)
    assert all(math.isnan(e["onset_ms"]) for e in none)


def test_bad_inputs_name_the_field():
    loaded, other, fz, fo = _steps()
    with pytest.raises(ValueError, match="plate_other_z"):
        phase_breakdown(fz, fo, fz, fo[:-1], other, BW)
    with pytest.raises(ValueError, match="body_weight_n"):
        phase_breakdown(fz, fo, fz, fo, other, 0.0)
    with pytest.raises(ValueError, match="other_contact"):
        stance_phases(loaded, other[:-1])
    with pytest.raises(ValueError, match="time_s"):
        contact_event_errors_ms(loaded, loaded, np.zeros(loaded.size))


@pytest.mark.skipif(not (DATA / "GC6_DM").is_dir() or not (DATA / "GC5_PS").is_dir(), reason="shared data not found")
def test_shared_trials_error_sources_regression():
    """DM og1 misses its goal by one late heel strike (the left foot's at 2.933 s, detected 25 ms late): its
    terminal double support carries 79 % of the squared error.  PS's single support is biased by the plates reading
    10 % heavy (-8 to -12 %BW there, all of it the whole-body force).  Bounds: the measured values plus margin."""
    from models.io.shared_trials import shared_trials
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics
    from runtime.estimation.validate import _phase_figures

    trials = {t.name: t for t in shared_trials(Path(DATA))}
    figs = {}
    for name in ("DM_og1", "PS_ss1"):
        t = trials[name]
        params = AnalyzeParams(t.mass_kg, t.height_m, t.side, muscles=False)  # type: ignore[arg-type]
        kin = trial_kinematics(t.trc, t.markerset, params)
        measured = analyze_trial(t.trc, t.markerset, params, grf_path=t.grf, kin=kin)
        estimate = analyze_trial(t.trc, t.markerset, params, kin=kin)
        figs[name] = _phase_figures(estimate, measured, t.side, params.grf_threshold_n, t.mass_kg * 9.80665)
    og1 = figs["DM_og1"]
    tds = og1["phases"]["terminal_double_support"]
    assert tds["mse_fraction"] >= 0.65 and 9.0 <= tds["bias_pct_bw"] <= 14.0          # measured 0.79, +11.6
    assert tds["split_part_rms_pct_bw"] >= 10.0                                        # measured 12.5
    late = [e for e in og1["contact_events_ms"]["left"] if abs(e["plate_onset_s"] - 2.933) < 0.01]
    assert len(late) == 1 and 16.0 <= late[0]["onset_ms"] <= 34.0                       # measured 25 ms
    for name in ("single_support_early", "single_support_late"):
        assert og1["phases"][name]["rmse_pct_bw"] <= 3.5                                # measured 2.7, 2.3
        ps = figs["PS_ss1"]["phases"][name]
        assert -12.5 <= ps["bias_pct_bw"] <= -6.5                                      # measured -10.4, -8.2
        assert ps["split_part_rms_pct_bw"] <= 0.5 and ps["total_part_rms_pct_bw"] >= 8.0
