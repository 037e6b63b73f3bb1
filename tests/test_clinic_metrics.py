"""Summary metrics of one trial against closed-form values on synthetic curves, and the model hash."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from runtime.clinic.metrics import analysis_metrics, complete_stance_peaks

T = np.linspace(0.0, 2.0, 4001)
STANCES = [(0.1, 0.7), (1.1, 1.7)]


def _bump(t, a, b, amp):
    x = np.where((t >= a) & (t <= b), np.sin(math.pi * (t - a) / (b - a)), 0.0)
    return amp * x


def _trial(with_muscles=True):
    kam = _bump(T, *STANCES[0], 3.0) + _bump(T, *STANCES[1], 2.0)
    kem = _bump(T, *STANCES[0], 4.0) + _bump(T, *STANCES[1], 4.0)
    left = np.zeros((T.size, 3))
    left[:, 2] = _bump(T, *STANCES[0], 800.0) + _bump(T, *STANCES[1], 800.0)
    right = np.zeros((T.size, 3))
    right[:, 2] = _bump(T, -0.3, 0.3, 2000.0) + _bump(T, 0.6, 1.2, 1000.0)   # first stance cut by the trial start
    names = ("vasmed_l", "vaslat_l", "vasint_l", "recfem_l", "semimem_l", "semiten_l", "bflh_l", "bfsh_l", "soleus_l")
    act = np.tile([0.4, 0.4, 0.4, 0.4, 0.1, 0.1, 0.1, 0.1, 0.9], (T.size, 1))
    muscles = SimpleNamespace(activation=act, muscle_names=names) if with_muscles else None
    params = SimpleNamespace(side="left", grf_threshold_n=20.0)
    return SimpleNamespace(time_s=T, stance=STANCES, kam_pct_bw_ht=kam, kem_pct_bw_ht=kem, muscles=muscles,
                           params=params, foot_force_n={"left": left, "right": right})


def _kcf():
    med = np.full(T.size, 600.0)
    lat = np.full(T.size, 200.0)
    bw = 700.0
    return SimpleNamespace(medial_n=med, lateral_n=lat, medial_bw=med / bw, lateral_bw=lat / bw,
                           total_bw=(med + lat) / bw + _bump(T, *STANCES[0], 1.0))


def test_peaks_impulses_share_cci_and_symmetry_match_closed_form():
    m, n = analysis_metrics(_trial(), _kcf())
    assert n == 2
    assert m["peak_kam_pct_bw_ht"] == pytest.approx((3.0 + 2.0) / 2, rel=1e-6)
    assert m["impulse_kam_pct_bw_ht_s"] == pytest.approx((3.0 + 2.0) / 2 * 2 * 0.6 / math.pi, rel=1e-5)
    assert m["peak_kem_pct_bw_ht"] == pytest.approx(4.0, rel=1e-6)
    assert m["peak_kcf_total_bw"] == pytest.approx(((800 / 700 + 1.0) + 800 / 700) / 2, rel=1e-6)
    assert m["peak_kcf_medial_bw"] == pytest.approx(600 / 700)
    assert m["medial_load_share"] == pytest.approx(0.75)
    assert m["cocontraction_index"] == pytest.approx(0.1 / 0.4 * (0.1 + 0.4))     # Rudolph 2000: (lo/hi)(lo+hi)
    assert m["limb_symmetry_pct"] == pytest.approx(80.0)                         # cut stance (2000 N) excluded
    assert m["assistance_impulse_nm_s"] is None and m["assistance_peak_nm"] is None


def test_missing_sources_give_none_never_zero():
    m, _ = analysis_metrics(_trial(with_muscles=False), None)
    for k in ("peak_kcf_medial_bw", "peak_kcf_lateral_bw", "peak_kcf_total_bw", "medial_load_share",
              "cocontraction_index"):
        assert m[k] is None
    tr = _trial()
    tr.stance = []
    m, n = analysis_metrics(tr, _kcf())
    assert n == 0 and m["peak_kam_pct_bw_ht"] is None and m["peak_kcf_total_bw"] is None
    assert m["cocontraction_index"] is None


def test_complete_stance_peaks_skip_intervals_touching_the_ends():
    f = _bump(T, -0.2, 0.4, 900.0) + _bump(T, 0.8, 1.4, 700.0) + _bump(T, 1.7, 2.3, 500.0)
    assert complete_stance_peaks(T, f, 20.0) == [pytest.approx(700.0, rel=1e-6)]


def test_model_hash_follows_the_model_parameters():
    import mujoco

    from runtime.clinic.metrics import model_hash

    xml = '<mujoco><worldbody><body><joint type="hinge"/><geom size="0.1" mass="{m}"/></body></worldbody></mujoco>'
    a, b, c = (mujoco.MjModel.from_xml_string(xml.format(m=m)) for m in (1.0, 1.0, 1.5))
    assert model_hash(a) == model_hash(b) != model_hash(c)
