"""EMG envelopes and on/off timing: synthetic bursts with known timing, and one real PS file."""
from __future__ import annotations

import numpy as np
import pytest

from models.muscles.emg import (EMG_LABELS, EMG_TO_MYOLEG, compare_timing, emg_envelope, emg_window_101, model_activation_for,
                        on_off, read_c3d_emg, timing_agreement, trc_start_offset_s, xcorr_lag)
from models.io.lab_files import shared_data_dir
from models.body.registry import load_model

PS = shared_data_dir() / "GC5_PS"
needs_data = pytest.mark.skipif(not (PS / "c3d" / "PS_ngait_og_ss1.c3d").exists(), reason=f"shared data absent at {PS}")
RATE = 1200.0


def burst_signal(t, on, off, seed=0, amp=1.0, noise=0.02):
    """White noise (broadband, like EMG) gated on [on, off) s, plus a small noise floor and a 2 Hz artefact."""
    rng = np.random.default_rng(seed)
    gate = ((t >= on) & (t < off)).astype(float)
    return amp * gate * rng.normal(size=t.size) + noise * rng.normal(size=t.size) + 0.5 * np.sin(2 * np.pi * 2 * t)


def test_envelope_finds_a_known_burst_without_shifting_it():
    t = np.arange(0, 2.0, 1 / RATE)
    env = emg_envelope(burst_signal(t, 0.6, 1.2), RATE)
    on = on_off(env, 0.5)
    k = np.flatnonzero(on)
    # the 50 % crossings of a zero-lag envelope sit at the burst edges (6 Hz low-pass: ~40 ms rise)
    assert t[k[0]] == pytest.approx(0.6, abs=0.03) and t[k[-1]] == pytest.approx(1.2, abs=0.03)
    # the 2 Hz movement artefact (0.5 V, 25 x the noise floor) is removed by the band-pass
    assert env[(t > 0.1) & (t < 0.4)].max() < 0.1 * env.max()


def test_envelope_bad_input_is_named():
    with pytest.raises(ValueError, match="band_hz"):
        emg_envelope(np.zeros(100), 500.0, band_hz=(20, 450))
    with pytest.raises(ValueError, match="NaN"):
        emg_envelope(np.array([0.0, np.nan, 1.0]), RATE)
    with pytest.raises(ValueError, match="threshold"):
        on_off(np.arange(5.0), 1.5)


def test_timing_agreement_and_lag_on_shifted_bursts():
    n = 101
    x = np.arange(n)
    a = np.exp(-0.5 * ((x - 40) / 6.0) ** 2)
    b = np.exp(-0.5 * ((x - 47) / 6.0) ** 2)           # 7 % later
    lag, r = xcorr_lag(a, b, 20)
    assert lag == 7 and r > 0.999
    assert xcorr_lag(b, a, 20)[0] == -7
    assert timing_agreement(a, a) == 100.0
    # on/off at 25 %: each burst is on over 40 +- 10 points -> they disagree on 2 x 7 points of 101
    assert timing_agreement(a, b) == pytest.approx(100 * (1 - 14 / 101), abs=2.0)
    res = compare_timing({"soleus": a}, {"soleus": b}, window_s=1.0)["soleus"]
    assert res["lag_ms"] == pytest.approx(70.0) and res["lag_pct"] == pytest.approx(7.0)


def test_short_bursts_are_removed():
    x = np.zeros(101)
    x[10:12] = 1.0
    x[50:70] = 1.0
    on = on_off(x, 0.5, min_on_pct=3.0)
    assert not on[10:12].any() and on[50:70].all()


def test_every_emg_label_maps_to_myoleg_muscles():
    leg = load_model("myoleg").model
    names = [leg.actuator(i).name for i in range(leg.nu)]
    for label in EMG_LABELS:
        for m in EMG_TO_MYOLEG[label]:
            assert f"{m}_l" in names, (label, m)
    A = np.tile(np.arange(len(names), dtype=float), (3, 1))
    got = model_activation_for("gmax", A, names, "left")
    want = np.mean([names.index(f"glmax{k}_l") for k in (1, 2, 3)])
    assert np.allclose(got, want)
    with pytest.raises(KeyError, match="biceps"):
        model_activation_for("biceps", A, names, "left")


@needs_data
def test_real_ps_file_reads_aligns_and_has_emg():
    rec = read_c3d_emg(PS / "c3d" / "PS_ngait_og_ss1.c3d", EMG_LABELS + ("Fz1",))
    assert rec.rate_hz == 1200.0 and rec.volts.shape[1] == 17
    # alignment: the .mot plate-1 vertical force (trc clock) equals the c3d's -Fz1 at the computed offset
    from models.io.storage import read_mot

    off = trc_start_offset_s(PS / "trc" / "PS_ngait_og_ss1.trc", rec)
    mot = read_mot(PS / "grf" / "PS_ngait_og_ss1_kinetics.mot")
    fz = mot.column("1_ground_force_vy")
    err = [np.sqrt(np.mean((np.interp(mot.time_s + off + d / RATE, rec.time_s, -rec.channel("Fz1")) - fz) ** 2))
           for d in (-2, 0, 2)]
    assert err[1] < 5.0 and err[1] < min(err[0], err[2])
    emg, flat = emg_window_101(PS / "c3d" / "PS_ngait_og_ss1.c3d", PS / "trc" / "PS_ngait_og_ss1.trc", 1.0917)
    assert set(emg) == set(EMG_LABELS) and all(v.shape == (101,) for v in emg.values())
    assert "gracilis" in flat and "soleus" not in flat
    # soleus is a stance muscle: its envelope peaks in the second half of stance (PS ss1: heel strike at 0 %,
    # toe-off near 60 %), its minimum is in swing
    assert 20 <= int(np.argmax(emg["soleus"])) <= 60
    assert int(np.argmin(emg["soleus"])) > 60


@pytest.fixture(scope="module")
def neuro(tmp_path_factory):
    """`exo neuro --trials PS_ss1`: (output folder, neuro.json)."""
    import json
    import subprocess

    from _support import exo_cmd

    out = tmp_path_factory.mktemp("neuro") / "neuro"
    r = subprocess.run(exo_cmd() + ["neuro", "--out", str(out), "--trials", "PS_ss1"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out, json.loads((out / "neuro.json").read_text())


@needs_data
def test_exo_neuro_writes_tables_plots_and_json(neuro):
    import subprocess

    from _support import exo_cmd

    out, doc = neuro
    assert set(doc["trials"][0]["knee_contact_force_vs_in_vivo"]) == {"medial", "lateral", "total"}
    timing = doc["trials"][0]["emg_timing"]
    assert {"so", "synergy"} <= set(timing) and "gracilis" not in timing["so"] and "soleus" in timing["so"]
    rows = (out / "vaf_table.csv").read_text().splitlines()
    assert rows[0] == "k,vaf_stored_w_build,vaf_this_run" and len(rows) == 11
    vafs = [float(r.split(",")[2]) for r in rows[1:]]
    assert all(b >= a - 1e-3 for a, b in zip(vafs, vafs[1:])) and 0 < vafs[0] < vafs[-1] <= 1
    for name in ("activation_vs_emg_PS_ss1.png", "kcf_PS_ss1.png"):
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(exo_cmd() + ["neuro", "--out", str(out), "--trials", "PS_ss2"], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "--trials" in bad.stderr and "PS_ss2" in bad.stderr


@needs_data
def test_regression_guard_exo_neuro_contact_vs_in_vivo(neuro):
    """The same chain as tests/test_knee_contact.py on PS ss1, whose figures measured there on 2026-12-07
    (ACHIEVED["ours"][1]: total RMSE 0.494 BW, r^2 0.910, R^2 0.590, peak 3.238 BW) may slip by 15 % at most."""
    from test_knee_contact import ACHIEVED, MARGIN

    kcf = neuro[1]["trials"][0]["knee_contact_force_vs_in_vivo"]
    for part, (rmse, r2, cod, peak) in ACHIEVED["ours"][1].items():
        v = kcf[part]
        assert v["rmse_bw"] <= rmse * (1 + MARGIN), (part, v)
        assert 1 - v["r2"] <= (1 - r2) * (1 + MARGIN) and 1 - v["r2_cod"] <= (1 - cod) * (1 + MARGIN), (part, v)
        assert abs(v["peak_bw"] - v["peak_ref_bw"]) <= abs(peak - v["peak_ref_bw"]) * (1 + MARGIN), (part, v)


@needs_data
def test_anchor_exo_neuro_quotes_the_published_opensim_figure(neuro):
    """The anchor printed beside our figures is the published OpenSim SO + JR result on these trials: Modenese et
    al. 2021, Gait Posture 88:318, Table 1: total knee contact force RMSE 0.371 +- 0.070 BW, R^2 0.755 (quoted in
    ../shared/data/README.md), rounded to two decimals."""
    anchor = neuro[1]["anchors"]["knee_contact_force"]
    assert anchor["opensim_so_jr_total_rmse_bw"] == pytest.approx(0.371, abs=0.0015)
    assert anchor["opensim_so_jr_total_r2"] == pytest.approx(0.755, abs=0.0051)
    assert "Modenese et al. 2021" in anchor["source"]
