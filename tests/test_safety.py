"""Safety supervisor: limits, slew, fade to zero within the stated time, latching, explicit reset."""
import math

from hypothesis import given, settings, strategies as st

from controllers.safety import Fault, FaultKind, JointLimits, SafetyParams, SafetyState, SafetySupervisor

LIM = JointLimits("knee_r", torque_limit_nm=18.0, slew_limit_nm_per_s=300.0, position_min_rad=-0.05,
                  position_max_rad=2.1, velocity_limit_rad_s=12.0)
PARAMS = SafetyParams(joints=(LIM,), fade_time_s=0.1, stale_after_s=0.1)
DT = 2_000_000  # 500 Hz


def run(sup, values, t0=0):
    out, t = [], t0
    for v in values:
        out.append(sup.update([v], t)[0])
        t += DT
    return out, t


def test_inactive_emits_zero_and_activation_ramps_with_slew():
    sup = SafetySupervisor(PARAMS)
    out, t = run(sup, [10.0] * 5)
    assert out == [0.0] * 5
    assert sup.activate(t)
    out, _ = run(sup, [10.0] * 30, t)
    assert abs(out[0] - 0.6) < 1e-12 and abs(out[1] - 1.2) < 1e-12   # 300 N*m/s * 2 ms per cycle
    assert max(abs(b - a) for a, b in zip(out, out[1:])) <= 0.6 + 1e-12
    assert out[-1] == 10.0


def test_torque_limit_clamps():
    sup = SafetySupervisor(PARAMS)
    sup.activate(0)
    out, _ = run(sup, [1e6] * 200, DT)
    assert max(out) == 18.0
    sup2 = SafetySupervisor(PARAMS)
    sup2.activate(0)
    out, _ = run(sup2, [-1e6] * 200, DT)
    assert min(out) == -18.0


def test_fault_fades_linearly_to_exact_zero_within_fade_time_and_latches():
    sup = SafetySupervisor(PARAMS)
    sup.activate(0)
    _, t = run(sup, [15.0] * 100, DT)
    sup.report_fault(Fault("can.knee_r", FaultKind.TIMEOUT, 0.06, t))
    out, t_end = run(sup, [15.0] * 60, t)
    assert sup.state is SafetyState.FAULTED
    zero_at = next(i for i, v in enumerate(out) if v == 0.0)
    assert zero_at * DT <= 100_000_000                  # zero within 100 ms
    assert all(v == 0.0 for v in out[zero_at:])
    assert all(b <= a for a, b in zip(out, out[1:]))    # monotonic ramp, no step up
    assert not sup.activate(t_end)                      # latched: no re-activation without reset


def test_reset_refused_until_zero_then_allowed_and_logged():
    sup = SafetySupervisor(PARAMS)
    sup.activate(0)
    _, t = run(sup, [15.0] * 100, DT)
    sup.report_fault(Fault("operator", FaultKind.ESTOP, 1.0, t))
    sup.update([15.0], t + DT)
    assert not sup.reset_faults(t + DT)
    run(sup, [15.0] * 60, t + 2 * DT)
    assert sup.reset_faults(t + 70 * DT)
    assert sup.state is SafetyState.INACTIVE and not sup.latched
    whats = [e.what for e in sup.events]
    assert "fault" in whats and "reset_refused" in whats and "reset" in whats


def test_nan_request_faults_and_never_reaches_output():
    sup = SafetySupervisor(PARAMS)
    sup.activate(0)
    _, t = run(sup, [5.0] * 50, DT)
    out, _ = run(sup, [math.nan] * 5 + [math.inf] * 5 + [5.0] * 60, t)
    assert all(math.isfinite(v) for v in out)
    assert sup.latched[0].kind is FaultKind.NAN
    assert out[-1] == 0.0


def test_stale_command_faults():
    sup = SafetySupervisor(PARAMS)
    sup.activate(0)
    sup.check_command_age(99_000_000, 1)
    assert not sup.latched
    sup.check_command_age(101_000_000, 2)
    assert sup.latched[0].kind is FaultKind.STALE and sup.latched[0].value > 0.1


def test_joint_envelope_temperature_and_drive_error():
    for kwargs, kind in [(dict(position_rad=2.5, velocity_rad_s=0.0), FaultKind.POSITION_ENVELOPE),
                         (dict(position_rad=1.0, velocity_rad_s=-20.0), FaultKind.VELOCITY_ENVELOPE),
                         (dict(position_rad=1.0, velocity_rad_s=0.0, temperature_c=95.0), FaultKind.OVER_TEMPERATURE),
                         (dict(position_rad=1.0, velocity_rad_s=0.0, error_code=2), FaultKind.DRIVE_ERROR),
                         (dict(position_rad=math.nan, velocity_rad_s=0.0), FaultKind.NAN)]:
        sup = SafetySupervisor(PARAMS)
        sup.activate(0)
        sup.check_joint_state(0, t_ns=5, **kwargs)
        assert [f.kind for f in sup.latched] == [kind]


def test_deactivate_fades_then_inactive_without_fault():
    sup = SafetySupervisor(PARAMS)
    sup.activate(0)
    _, t = run(sup, [10.0] * 100, DT)
    sup.deactivate(t)
    out, t2 = run(sup, [10.0] * 60, t)
    assert out[-1] == 0.0 and sup.state is SafetyState.INACTIVE and not sup.latched
    assert sup.activate(t2)


requests = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                     st.floats(min_value=-40, max_value=40))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(values=st.lists(requests, min_size=1, max_size=400),
       fault_at=st.integers(min_value=0, max_value=400),
       kind=st.sampled_from(list(FaultKind)),
       deactivate_at=st.one_of(st.none(), st.integers(min_value=0, max_value=400)))
def test_adversarial_streams_never_exceed_limits_and_fade_in_time(values, fault_at, kind, deactivate_at):
    sup = SafetySupervisor(PARAMS)
    sup.activate(0)
    prev, t = 0.0, DT
    fade_rate = LIM.torque_limit_nm / PARAMS.fade_time_s
    fault_t = None
    for i, v in enumerate(values + [0.0] * 60):
        if i == fault_at:
            sup.report_fault(Fault("test", kind, 1.0, t))
            fault_t = t
        if deactivate_at is not None and i == deactivate_at:
            sup.deactivate(t)
        out = sup.update([v], t)[0]
        assert math.isfinite(out)
        assert abs(out) <= LIM.torque_limit_nm
        step_bound = max(LIM.slew_limit_nm_per_s, fade_rate) * DT * 1e-9
        assert abs(out - prev) <= step_bound + 1e-9
        if fault_t is not None and t - fault_t >= PARAMS.fade_time_s * 1e9:
            assert out == 0.0
        prev = out
        t += DT
