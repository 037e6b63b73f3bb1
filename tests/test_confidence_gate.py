"""The confidence gate: smooth scale, fade within the stated time, no ramp-up before the hold time, events name
the part that fell (deterministic cases and a hypothesis property over random confidence streams and times)."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.confidence_gate import ConfidenceGate, ConfidenceGateParams, smoothstep

P = ConfidenceGateParams(fade_below=0.4, full_above=0.7, hold_s=1.0, fade_s=0.1, ramp_s=2.0)
DT = 1 / 60


def _run(gate: ConfidenceGate, t0: float, seconds: float, conf: float, parts: dict | None = None):
    out = []
    n = int(round(seconds / DT))
    for k in range(n):
        t = t0 + k * DT
        out.append((t, gate.update(t, conf, parts)))
    return out, t0 + n * DT


def test_starts_off_holds_then_ramps_and_says_so():
    g = ConfidenceGate(P)
    ok = {"visibility": 0.95, "residual": 0.9}
    out, t = _run(g, 0.0, 4.0, 0.95, ok)
    # nothing before the hold time, then a ramp over ramp_s, then full scale
    assert all(s == 0.0 for tt, s in out if tt < 1.0 - 1e-9)
    assert all(s > 0.0 for tt, s in out if tt > 1.0 + 1e-9)
    mid = [s for tt, s in out if abs(tt - 2.0) < DT / 2][0]
    assert mid == pytest.approx(0.5, abs=DT / 2.0 + 1e-9)
    assert out[-1][1] == 1.0 and g.state == "ON"
    assert [e.kind for e in g.events] == ["restored"]
    assert g.events[0].t_s == pytest.approx(3.0, abs=DT + 1e-9) and g.events[0].part == "residual"


def test_fade_completes_within_fade_s_and_names_the_part_that_fell():
    g = ConfidenceGate(P)
    _, t = _run(g, 0.0, 4.0, 0.95, {"visibility": 0.95, "residual": 0.9})
    assert g.scale == 1.0
    t_drop = t
    out, t = _run(g, t, 0.5, 0.1, {"visibility": 0.1, "residual": 0.9})
    fade = g.events[-1]
    assert fade.kind == "fade" and fade.part == "visibility" and fade.value == 0.1 and fade.t_s == t_drop
    # linear to zero, exactly zero from t_drop + fade_s on (the supervisor's law)
    for tt, s in out:
        if tt - t_drop >= P.fade_s + 1e-9:
            assert s == 0.0
        else:
            assert s == pytest.approx(max(0.0, 1.0 - (tt - t_drop) / P.fade_s), abs=1e-9)
    assert g.state == "OFF"
    # clean again for less than the hold time, then a drop: no ramp at all
    out, t = _run(g, t, 0.9, 0.95, {"visibility": 0.95, "residual": 0.9})
    out2, t = _run(g, t, 0.2, 0.3, {"visibility": 0.95, "residual": 0.3})
    assert all(s == 0.0 for _, s in out + out2)
    assert [e.kind for e in g.events] == ["restored", "fade"]      # no fade event while already off
    # held clean: back after hold_s, full after hold_s + ramp_s
    t_clean = t
    out, t = _run(g, t, 3.5, 0.95, {"visibility": 0.95, "residual": 0.9})
    first_up = next(tt for tt, s in out if s > 0.0)
    assert first_up >= t_clean + P.hold_s - 1e-9
    assert g.events[-1].kind == "restored" and g.scale == 1.0


def test_nan_confidence_fades_and_between_thresholds_is_smooth():
    g = ConfidenceGate(ConfidenceGateParams(fade_below=0.4, full_above=0.7, hold_s=0.0, fade_s=0.1, ramp_s=0.0))
    assert g.update(0.0, 0.9) == 1.0
    # in ON the scale follows the smoothstep (falling at most 1/fade_s per s)
    assert g.update(1.0, 0.55) == pytest.approx(smoothstep(0.5)) == pytest.approx(0.5)
    assert g.update(2.0, 0.64) == pytest.approx(smoothstep(0.8))
    g.update(3.0, math.nan, {"landmarks": math.nan, "residual": 0.2})
    assert g.event is not None and g.event.kind == "fade" and g.event.part == "landmarks"
    assert g.update(3.1, math.nan) == 0.0


@pytest.mark.parametrize("kw,field", [({"fade_below": 0.8, "full_above": 0.7}, "fade_below"),
                                      ({"hold_s": -1.0}, "hold_s"), ({"fade_s": 0.0}, "fade_s"),
                                      ({"full_above": math.nan}, "full_above"), ({"ramp_s": True}, "ramp_s")])
def test_params_rejected_with_name_and_value(kw, field):
    with pytest.raises(ValueError, match=field):
        ConfidenceGateParams(**kw)


# ----------------------------------------------------------------------------- property

confidences = st.one_of(st.floats(min_value=0.0, max_value=1.0), st.sampled_from([0.0, 0.39, 0.4, 0.7, 0.71, 1.0]),
                        st.just(math.nan), st.just(math.inf), st.just(-math.inf))
dts = st.one_of(st.sampled_from([1 / 60, 1 / 30, 0.05, 0.0, -0.02]), st.floats(min_value=0.0, max_value=0.4),
                st.just(math.nan))
names = st.sampled_from(["visibility", "reprojection", "residual", "envelope_kcf"])
parts_st = st.one_of(st.none(), st.dictionaries(names, st.one_of(st.floats(min_value=0.0, max_value=1.0),
                                                                 st.just(math.nan)), min_size=1, max_size=4))
runs = st.lists(st.tuples(dts, confidences, parts_st, st.integers(min_value=1, max_value=40)), min_size=1, max_size=40)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=runs, lo=st.floats(min_value=0.0, max_value=0.6), gap=st.floats(min_value=0.05, max_value=0.4),
       hold_s=st.floats(min_value=0.0, max_value=2.0), fade_s=st.floats(min_value=0.01, max_value=1.0),
       ramp_s=st.floats(min_value=0.0, max_value=3.0))
def test_fade_in_time_no_early_ramp_and_named_events(seq, lo, gap, hold_s, fade_s, ramp_s):
    p = ConfidenceGateParams(fade_below=lo, full_above=min(1.0, lo + gap), hold_s=hold_s, fade_s=fade_s, ramp_s=ramp_s)
    g = ConfidenceGate(p)
    t_raw, t_eff = 0.0, None            # the gate's time: the last finite, increasing t_s
    hist: list[tuple[float, float]] = []  # (effective t, confidence) of every sample
    prev_scale = 0.0
    fade_t: float | None = None         # time of the last fade event, until the scale rises again
    for dt, c, parts, repeat in seq:
        for _ in range(repeat):
            t_raw = t_raw + dt if math.isfinite(t_raw) else 0.0
            t_in = math.nan if not math.isfinite(dt) else t_raw
            if math.isfinite(t_in) and (t_eff is None or t_in > t_eff):
                t_eff = t_in
            s = g.update(t_in, c, parts)
            hist.append((t_eff if t_eff is not None else math.nan, c))
            assert 0.0 <= s <= 1.0
            ev = g.event
            if ev is not None:
                if ev.kind == "fade":
                    assert not (math.isfinite(c) and c >= p.fade_below)      # only when it fell
                    fade_t = ev.t_s
                if parts:
                    assert ev.part in parts
                    vals = [float(v) for v in parts.values()]
                    assert (math.isnan(ev.value) and any(math.isnan(v) for v in vals)) or ev.value == min(vals)
                else:
                    assert ev.part == "confidence"
            if fade_t is not None:
                # held: confidence >= full_above without a break since a time after the fade, for hold_s
                run_start = None
                for te, ce in reversed(hist):
                    if not (math.isfinite(ce) and ce >= p.full_above):
                        break
                    run_start = te
                held = run_start is not None and run_start >= fade_t and t_eff - run_start >= hold_s - 1e-9
                if s > prev_scale:
                    assert held                                               # never up before the hold time
                if held:
                    fade_t = None
                elif t_eff - fade_t >= fade_s:
                    assert s == 0.0                                           # faded within fade_s
            if s > prev_scale and ramp_s > 0.0:
                assert s - prev_scale <= (hist[-1][0] - (hist[-2][0] if len(hist) > 1 else hist[-1][0])) / ramp_s + 1e-9
            prev_scale = s


# ----------------------------------------------------------------------------- run level: the 60 Hz pipeline

RUN_GATE = {"confidence_fade_below": 0.3, "confidence_full_above": 0.6, "confidence_hold_s": 0.2,
            "confidence_fade_s": 0.1, "ramp_in_s": 0.2}
PERIOD_NS = 16_666_667                                   # the 60 Hz estimation loop
WINDOW = (84, 108)                                       # cycles of the perturbation (0.4 s)


@pytest.fixture(scope="module")
def dm_og6():
    """The real estimation chain on DM_og6 (lab markers held to 60 Hz) and the HIL demo device with a proportional
    strategy (its request does not wait for a gait phase) and a quick gate, so that one pass of the trial holds a
    clean start, the perturbation and a clean end."""
    from models.io.shared_trials import shared_trials
    from runtime.cli.doctor import shared_data_dir
    from runtime.core.config import DeviceConfig, SubjectProfile, load_device, parse
    from runtime.estimation.chain import EstimatorParams, KinematicsToLoads, load_marker_recording, resample_hold
    from tests._support import REPO

    trials = {t.name: t for t in shared_trials(shared_data_dir())}
    if "DM_og6" not in trials:
        pytest.skip("shared trial DM_og6 not found")
    t = trials["DM_og6"]
    est = KinematicsToLoads.for_subject(t.markerset, EstimatorParams(t.mass_kg, t.height_m, t.side, rate_hz=60.0))
    rec = resample_hold(load_marker_recording(t.trc, est.marker_names), 60.0)
    base = load_device(REPO / "launch" / "config" / "device_hil.yaml").model_dump()
    dev = parse(DeviceConfig, {**base, "assistance": {"strategy": "proportional", "torque_limit_nm": 6.0, **RUN_GATE}},
                "device_hil.yaml")
    subject = SubjectProfile(subject_id="DM", mass_kg=t.mass_kg, height_m=t.height_m, side=t.side,
                             assistance_level=1.0)
    return est, rec, dev, subject, t.side


class _PerturbedCapture:
    """The recording as the camera, one frame per cycle (capture time = the fake clock), perturbed in ``WINDOW``:
    ``frozen`` repeats the same markers (the recording does not advance), ``occluded`` gives NaN markers (the subject
    walks on unseen), ``noise`` adds N(0, 2 cm) to every coordinate (seeded)."""

    name = "capture"

    def __init__(self, rec, clock, kind: str) -> None:
        import numpy as np

        self.rec, self.clock, self.kind = rec, clock, kind
        self.i = self.k = 0
        self.rng = np.random.default_rng(18)

    def step(self, frame) -> None:
        import numpy as np

        frame.capture_ns, frame.restart = self.clock.now_ns(), False
        k, self.k = self.k, self.k + 1
        m = self.rec.markers_m[self.i]
        inside = WINDOW[0] <= k < WINDOW[1]
        if not (self.kind == "frozen" and inside):
            if self.kind == "occluded" and inside:
                m = np.full_like(m, np.nan)
            elif self.kind == "noise" and inside:
                m = m + self.rng.normal(0.0, 0.02, m.shape)
            self.i += 1
        frame.markers_m, frame.t_s = m, k / 60.0

    @property
    def done(self) -> bool:
        return self.i >= self.rec.time_s.size


def _run_perturbed(dm_og6, kind: str, log=None):
    """One pass of DM_og6 through capture -> chain -> assistance stage on a fake clock; rows (cycle, t s, confidence,
    scale, torque), the stage (``t0_ns`` added), the confidence parts at the end of a freeze. ``log``: a
    ``TelemetryLog`` the stage's topics are written to, as the session does."""
    from firmware_bridge.clock import FakeClock
    from runtime.pipeline.stages import EstimationStage, Pipeline, assistance_stage

    est, rec, dev, subject, side = dm_og6
    est.reset()
    clock = FakeClock()
    stage = assistance_stage(dev, subject, [j.name for j in dev.joints], side, clock.now_ns, est)
    stage.t0_ns = clock.now_ns()
    cap = _PerturbedCapture(rec, clock, kind)
    pipe = Pipeline([cap, EstimationStage(est), stage], 1, clock.now_ns, "test")
    topics = pipe.telemetry_topics()
    if log is not None:
        from runtime.session_topics import register_pipeline_topics
        register_pipeline_topics(log, topics, 0)
    rows, frozen_parts, k = [], {}, 0
    while not cap.done:
        pipe.step(k, lambda name, s: None)
        rows.append((k, (clock.now_ns() - stage.t0_ns) * 1e-9, stage.confidence, stage.scale,
                     pipe.frame.assistance_nm[0]))
        if log is not None:
            for spec in topics:
                snap = spec.snapshot(pipe.frame)
                if snap is not None:
                    log.write(spec.topic, pipe.frame.capture_ns, snap)
        if kind == "frozen" and k == WINDOW[1] - 1:
            frozen_parts = dict(zip(pipe.frame.estimate.confidence_names, pipe.frame.estimate.confidence_parts))
        clock.advance(PERIOD_NS)
        k += 1
    return rows, stage, frozen_parts


@pytest.mark.parametrize("kind,parts", [("frozen", {"freshness", "dynamics", "envelope_activation_rate", "envelope_kcf",
                                                    "envelope_kem", "envelope_vgrf"}),
                                        ("occluded", {"visibility", "estimate_valid"}),
                                        ("noise", {"dynamics", "envelope_activation_rate", "envelope_kcf", "envelope_kem",
                                                   "envelope_kam", "envelope_vgrf"})])
def test_pipeline_fades_on_a_frozen_occluded_or_noisy_subject_and_comes_back(dm_og6, kind, parts):
    """Capture -> the real estimation chain -> the assistance stage (proportional, gated, limited) on a fake clock:
    the perturbation fades the assistance (an event naming the part), the command is exactly zero within the stated
    fade time (plus the limiter's slew from at most the cap), stays zero until the confidence has held for the hold
    time after the input is clean again, and then the assistance comes back."""
    rows, stage, frozen_parts = _run_perturbed(dm_og6, kind)
    t0 = stage.t0_ns
    g = stage.gate.params
    lim = stage.controller.strategy.params
    t_a, t_b = WINDOW[0] / 60.0, WINDOW[1] / 60.0
    ev = [(e["kind"], (e["t_ns"] - t0) * 1e-9, e["part"]) for e in stage.events]
    # the assistance was up before the perturbation
    assert any(r[3] == 1.0 and r[4] < -0.5 for r in rows if r[1] < t_a)
    fades = [e for e in ev if e[0] == "CONFIDENCE_FADE" and t_a - 1e-9 <= e[1] < t_b]
    assert fades, ev
    t_f, part = fades[0][1], fades[0][2]
    assert part in parts, (kind, ev)
    if kind == "frozen":
        assert frozen_parts["freshness"] == 0.0          # by the end of the freeze the input is known frozen
    # zero within the stated time: the gate's scale at t_f + fade_s, the command after the limiter's slew from the cap
    t_zero = t_f + g.fade_s + lim.torque_limit_nm / lim.slew_limit_nm_per_s
    assert all(r[3] == 0.0 for r in rows if t_f + g.fade_s <= r[1] < t_b)
    assert all(r[4] == 0.0 for r in rows if t_zero <= r[1] < t_b)
    # back only after the confidence held >= full_above for hold_s, once clean again; and it does come back
    after = [r for r in rows if r[1] >= t_b]
    first_up = next(i for i, r in enumerate(after) if r[3] > 0.0)
    last_low = max((r[1] for r in rows[:len(rows) - len(after) + first_up] if not r[2] >= g.full_above), default=-1.0)
    assert after[first_up][1] - last_low >= g.hold_s - 1e-9
    restored = [e for e in ev if e[0] == "CONFIDENCE_RESTORED" and e[1] >= t_b]
    assert restored and any(r[3] == 1.0 for r in after)
    assert any(r[4] < -0.5 for r in after if r[1] >= restored[0][1])
    counts = stage.close()
    assert counts["confidence_fades"] == sum(1 for e in ev if e[0] == "CONFIDENCE_FADE") >= 1
    assert counts["confidence_fades_by_part"].get(part, 0) >= 1


def test_report_and_summary_show_the_fades_and_their_reasons(dm_og6, tmp_path):
    """The run's log (the stage's /exo/assistance/events) and summary.json (the stage's counts at close) give the
    report's "Assistance fades" table: each fade with the part that fell, and the count."""
    import json

    from runtime.report.html import build_html
    from runtime.report.summary import summarize_log
    from runtime.telemetry.log import TelemetryLog

    run = tmp_path / "run"
    run.mkdir()
    log = TelemetryLog(run / "telemetry", chunk_period_s=0.5, queue_capacity=100_000)
    with log.open():
        rows, stage, _ = _run_perturbed(dm_og6, "occluded", log)
    closed = stage.close()
    (run / "summary.json").write_text(json.dumps({"stages": {"assistance": closed}}, default=str))
    s = summarize_log(run)
    assert s["assistance_fades"] == closed["confidence_fades"] >= 1
    assert [e["kind"] for e in s["assistance_events"]] == [e["kind"] for e in stage.events]
    doc, _, _ = build_html(run)
    section = doc[doc.index("Assistance fades"):]
    assert "CONFIDENCE_FADE" in section and "visibility: confidence" in section
    assert f"{closed['confidence_fades']} confidence fades" in section
    assert closed["gate"]["full_above"] == 0.6 and 0.0 < closed["gate"]["closed_fraction"] < 1.0
    assert f"gate closed on {100.0 * closed['gate']['closed_fraction']:.0f} % of {len(rows)} cycles" in section
    # a run whose confidence never held: the report says the gate never opened
    (run / "summary.json").write_text(json.dumps({"stages": {"assistance": {
        **closed, "confidence_restored": 0, "gate": {**closed["gate"], "closed_fraction": 1.0}}}}, default=str))
    assert "the confidence gate never opened: the confidence did not hold at or above 0.6 for 0.2 s" in \
        build_html(run)[0]
    faults = doc[doc.index("Faults and their timeline"):doc.index("Assistance fades")]
    assert "CONFIDENCE_FADE" not in faults
