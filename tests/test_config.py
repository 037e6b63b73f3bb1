"""Invalid configurations of each kind are rejected with the key, the value and the allowed range."""
import pytest
import yaml

from runtime.core.config import (CalibrationFile, ConfigError, DeviceConfig, SubjectProfile, check_consistency, load,
                            load_calibration, load_device, load_subject, parse)

JOINT = {"name": "knee_r", "actuator": "knee_r_motor", "torque_limit_nm": 18.0}


def device(**over):
    d = {"joints": [dict(JOINT)]}
    d.update(over)
    return d


def rejected(model, data, source="x.yaml") -> str:
    with pytest.raises(ConfigError) as err:
        parse(model, data, source)
    return str(err.value)


def test_example_configs_load_and_agree(repo):
    cfg = repo / "launch" / "config"
    dev, cal = load_device(cfg / "device.yaml"), load_calibration(cfg / "calibration.yaml")
    load_subject(cfg / "subject.yaml")
    check_consistency(dev, cal)
    assert dev.torque_loop.rate_hz == 500 and dev.estimation.rate_hz == 60


@pytest.mark.parametrize("over,key,value,allowed", [
    ({"torque_loop": {"rate_hz": 5000}}, "torque_loop.rate_hz", "5000", "100.0 <= rate_hz <= 1000.0"),
    ({"torque_loop": {"rate_hz": 50}}, "torque_loop.rate_hz", "50", "100.0 <= rate_hz <= 1000.0"),
    ({"estimation": {"rate_hz": 500}}, "estimation.rate_hz", "500", "1.0 <= rate_hz <= 120.0"),
    ({"safety": {"fade_time_s": 0.5}}, "safety.fade_time_s", "0.5", "fade_time_s <= 0.1"),
    ({"joints": [dict(JOINT, torque_limit_nm=400)]}, "joints[0].torque_limit_nm", "400", "0.0 < torque_limit_nm <= 150.0"),
    ({"joints": [dict(JOINT, torque_limit_nm=-1)]}, "joints[0].torque_limit_nm", "-1", "0.0 < torque_limit_nm <= 150.0"),
    ({"joints": [dict(JOINT, slew_limit_nm_per_s=1e6)]}, "joints[0].slew_limit_nm_per_s", "1000000.0", "<= 5000.0"),
])
def test_device_out_of_range(over, key, value, allowed):
    msg = rejected(DeviceConfig, device(**over), "device.yaml")
    assert msg.startswith("device.yaml: ")
    assert key in msg and f"= {value}" in msg and allowed in msg


def test_device_unknown_key_lists_allowed_keys():
    msg = rejected(DeviceConfig, device(torque_loop={"rate_hz": 500, "rate": 1}))
    assert "torque_loop.rate: unknown key" in msg and "allowed keys here: rate_hz" in msg
    msg = rejected(DeviceConfig, device(telemetri={}))
    assert "telemetri: unknown key" in msg and "telemetry" in msg


def test_device_wrong_types():
    msg = rejected(DeviceConfig, device(estimation={"rate_hz": "fast"}))
    assert "estimation.rate_hz = 'fast'" in msg and "valid number" in msg
    msg = rejected(DeviceConfig, device(bus={"interface": "can0"}))
    assert "bus.interface = 'can0'" in msg and "'socketcan'" in msg
    msg = rejected(DeviceConfig, device(joints="knee"))
    assert "joints = 'knee'" in msg


def test_nan_and_inf_rejected():
    msg = rejected(DeviceConfig, device(joints=[dict(JOINT, torque_limit_nm=float("nan"))]))
    assert "joints[0].torque_limit_nm = nan" in msg
    msg = rejected(SubjectProfile, {"subject_id": "S1", "mass_kg": float("inf"), "height_m": 1.8, "side": "left"})
    assert "mass_kg = inf" in msg


def test_cross_field_rules():
    assert "must be at least twice" in rejected(DeviceConfig, device(estimation={"rate_hz": 120},
                                                                     torque_loop={"rate_hz": 200}))
    assert "position_min_rad = 1.0 must be < position_max_rad = 0.5" in rejected(
        DeviceConfig, device(joints=[dict(JOINT, position_min_rad=1.0, position_max_rad=0.5)]))
    assert "names must be unique" in rejected(DeviceConfig, device(joints=[dict(JOINT), dict(JOINT)]))


def test_subject_profile_each_kind():
    base = {"subject_id": "S001", "mass_kg": 75, "height_m": 1.8, "side": "left"}
    assert "mass_kg = 5" in rejected(SubjectProfile, dict(base, mass_kg=5)) and "20.0 <= mass_kg <= 250.0" in rejected(SubjectProfile, dict(base, mass_kg=5))
    assert "height_m = 3.1" in rejected(SubjectProfile, dict(base, height_m=3.1))
    assert "side = 'up'" in rejected(SubjectProfile, dict(base, side="up"))
    assert "assistance_level = 1.5" in rejected(SubjectProfile, dict(base, assistance_level=1.5))
    assert "subject_id = 'Jane Doe'" in rejected(SubjectProfile, dict(base, subject_id="Jane Doe"))
    assert "height_m: required key is missing" in rejected(SubjectProfile, {k: v for k, v in base.items() if k != "height_m"})
    assert "nickname: unknown key" in rejected(SubjectProfile, dict(base, nickname="x"))


def test_calibration_each_kind():
    act = {"name": "m", "can_id": 1}
    assert "actuators[0].can_id = 4096" in rejected(CalibrationFile, {"actuators": [dict(act, can_id=4096)]}) and "can_id <= 255" in rejected(CalibrationFile, {"actuators": [dict(act, can_id=4096)]})
    assert "actuators[0].direction = 2" in rejected(CalibrationFile, {"actuators": [dict(act, direction=2)]})
    assert "actuators[0].gear_ratio = 0" in rejected(CalibrationFile, {"actuators": [dict(act, gear_ratio=0)]})
    assert "can_id must be unique" in rejected(CalibrationFile, {"actuators": [dict(act), dict(act, name="n")]})
    assert "actuators[0].kt: unknown key" in rejected(CalibrationFile, {"actuators": [dict(act, kt=1)]})


def test_joint_without_calibrated_actuator(configs):
    dev, _, _ = configs
    cal = parse(CalibrationFile, {"actuators": [{"name": "other", "can_id": 2}]})
    with pytest.raises(ConfigError, match=r"joints\[0\].actuator = 'knee_r_motor': no such actuator"):
        check_consistency(dev, cal)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "dev.yaml"
    bad.write_text("joints: [\n")
    with pytest.raises(ConfigError, match="dev.yaml: not valid YAML"):
        load(DeviceConfig, bad)
    bad.write_text(yaml.safe_dump(["a", "b"]))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load(DeviceConfig, bad)
    with pytest.raises(ConfigError, match="cannot read file"):
        load(DeviceConfig, tmp_path / "missing.yaml")
