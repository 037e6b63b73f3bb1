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
                    if not (ce >= p.full_above):
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
