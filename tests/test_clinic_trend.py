"""Longitudinal views: metrics over sessions, normal ranges, flags from clinic.yaml, plots, `exo trend`."""
import datetime as dt
import io
import contextlib

import pytest

from runtime.clinic.config import ConfigError, load_clinic_config
from runtime.clinic.store import SessionRecord, SubjectInfo, open_store
from runtime.clinic.trend import format_table, subject_trend, write_plots

SUBJECT = SubjectInfo("P042", 80.0, 1.75, "female", "right")
# three visits: KAM rises above 3.5, limb symmetry of the affected right knee drops below 90 %, CCI rises 40 %
VISITS = [(dt.date(2026, 1, 10), 3.1, 97.0, 0.050), (dt.date(2026, 3, 10), 3.4, 88.0, 0.060),
          (dt.date(2026, 6, 10), 3.9, 92.0, 0.070)]


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with open_store(url) as store:
        for i, (date, kam, sym, cci) in enumerate(VISITS):
            src = tmp_path / f"visit{i}.json"
            src.write_text(f'{{"visit": {i}}}')
            store.add_session(SessionRecord(
                subject=SUBJECT, task="walking", source="lab_trial", trial_name=f"visit{i + 1}", side="right",
                source_file=str(src), session_date=date,
                metrics={"peak_kam_pct_bw_ht": kam, "limb_symmetry_pct": sym, "cocontraction_index": cci,
                         "peak_kcf_total_bw": None}))
        # a session of the other (unaffected) knee: symmetry there must not raise the unloading flag
        src = tmp_path / "left.json"
        src.write_text("{}")
        store.add_session(SessionRecord(subject=SUBJECT, task="walking", source="import", trial_name="left_knee",
                                        side="left", source_file=str(src), session_date=None,
                                        metrics={"limb_symmetry_pct": 70.0}))
    return url


def test_flags_follow_the_configured_rules(db):
    cfg = load_clinic_config()
    with open_store(db) as store:
        trend = subject_trend(store, "P042", cfg)
    assert [s["trial_name"] for s in trend.sessions] == ["visit1", "visit2", "visit3", "left_knee"]   # by date
    got = sorted((f.rule, f.trial_name) for f in trend.flags)
    assert got == [("elevated_peak_kam", "visit3"), ("rising_cocontraction", "visit3"),
                   ("unloading_affected_limb", "visit2")]
    rise = next(f for f in trend.flags if f.rule == "rising_cocontraction")
    assert rise.threshold == pytest.approx(0.050 * 1.25) and "+40 %" in rise.text
    table = format_table(trend, cfg)
    assert "peak_kam_pct_bw_ht (%BW*ht)" in table and "2.5-3.5*" in table and "90-110*" in table
    kcf_row = next(line for line in table.splitlines() if line.startswith("peak_kcf_total_bw"))
    assert kcf_row.split()[2:6] == ["-", "-", "-", "-"]                 # NULL shown as missing, never 0


def test_plots_one_png_per_metric_with_data(db, tmp_path):
    cfg = load_clinic_config()
    with open_store(db) as store:
        trend = subject_trend(store, "P042", cfg)
    files, empty = write_plots(trend, cfg, tmp_path / "plots")
    assert sorted(p.name for p in files) == ["P042_cocontraction_index.png", "P042_limb_symmetry_pct.png",
                                             "P042_peak_kam_pct_bw_ht.png"]
    assert "peak_kcf_total_bw" in empty
    for p in files:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_exo_trend_command(db, tmp_path):
    from runtime.cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["trend", "--subject", "P042", "--db", db, "--out", str(tmp_path / "t")]) == 0
    assert "unloading_affected_limb: visit2" in buf.getvalue() and "plots: 3 PNG(s)" in buf.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["trend", "--subject", "P999", "--db", db]) == 2
    assert "--subject 'P999': not in the store (subjects: P042)" in err.getvalue()


def test_clinic_config_rejects_bad_keys_naming_them(tmp_path):
    bad = tmp_path / "clinic.yaml"
    bad.write_text("metrics:\n  peak_kam_pct_bw_ht: {normal_low: 4, normal_high: 3, source: x y z}\n")
    with pytest.raises(ConfigError, match="normal_low = 4.0 must be < normal_high = 3.0"):
        load_clinic_config(bad)
    bad.write_text("metrics: {}\nflags:\n  f: {metric: knee_pain, above: 1, source: abc}\n")
    with pytest.raises(ConfigError, match="metric = 'knee_pain': not a stored metric"):
        load_clinic_config(bad)
    bad.write_text("metrics: {}\nflags:\n  f: {metric: peak_kam_pct_bw_ht, above: 1, below: 0, source: abc}\n")
    with pytest.raises(ConfigError, match="exactly one of above, below, rise_fraction"):
        load_clinic_config(bad)


def test_every_configured_range_and_flag_names_a_source():
    """A range or threshold is a number someone must be able to check: each names a citation (author, year) or
    says in words that it is a project convention / heuristic / brief value, and none claims ``verified: true``
    without a citation. Every unverified range is shown as such (``*``) in the table and the plots' legend."""
    import re

    cfg = load_clinic_config()
    from runtime.clinic.schema import METRICS
    from runtime.clinic.trend import _range_text

    citation = re.compile(r"[A-Z][A-Za-z-]+( et al\.| and [A-Z][A-Za-z-]+)? \(?(19|20)\d\d")
    own = re.compile(r"project|brief|convention|heuristic|approximate|README|device-specific", re.IGNORECASE)
    assert set(cfg.metrics) == set(METRICS)
    for name, r in cfg.metrics.items():
        has_range = r.normal_low is not None or r.normal_high is not None
        if not has_range:
            assert re.search(r"no normal range|device-specific", r.source), (name, r.source)
            continue
        assert citation.search(r.source) or own.search(r.source), (name, r.source)
        if r.verified:
            assert citation.search(r.source), f"{name}: verified: true needs a citation, got {r.source!r}"
        else:
            assert _range_text(cfg, name).endswith("*"), name
    for name, f in cfg.flags.items():
        assert citation.search(f.source) or own.search(f.source), (name, f.source)
        thr = f.above if f.above is not None else f.below
        rng = cfg.metrics[f.metric]
        # a threshold taken from the normal range says so, and equals that bound
        if thr is not None and "normal range" in f.source:
            assert thr in (rng.normal_low, rng.normal_high), (name, thr)
