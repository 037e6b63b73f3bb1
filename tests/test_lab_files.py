"""Lab trial readers (models/io/: lab_files, trc, storage, c3d and their types): real recordings in ../shared/data
plus malformed files.

Fast (well under 10 s): every .trc/.mot/.sto under the shared data folder is read once per test session.
Facts checked against ../shared/data/README.md.  The .c3d tests need the optional package ezc3d.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from models.io import lab_files as lf
from models.io.axes import opensim_to_z_up
from models.io.c3d import C3DTrial, read_c3d
from models.io.lab_files import read_trial, summarize
from models.io.marker_trial import MarkerTrial
from models.io.reader_support import LabFileWarning, OptionalDependencyError
from models.io.storage import read_mot, read_sto
from models.io.time_series import TimeSeriesTable
from models.io.trc import read_trc

DATA = lf.shared_data_dir()
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"shared lab data folder {DATA} is missing (set EXO_SHARED_DATA to point at it)"
)

PS_BODY_WEIGHT_N = 75.0 * 9.81  # README: PS is 75 kg
DM_BODY_WEIGHT_N = 70.0 * 9.81  # README: DM is 70 kg


def _files(*suffixes: str) -> list[Path]:
    if not DATA.is_dir():
        return []
    return sorted(p for p in DATA.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


@lru_cache(maxsize=None)
def _read(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabFileWarning)  # the real files must read without a warning
        return read_trial(path)


def _rel(p: Path) -> str:
    return str(p.relative_to(DATA)) if DATA in p.parents else p.name


# --------------------------------------------------------------------------------------------------
# every real file
# --------------------------------------------------------------------------------------------------


@needs_data
def test_listed_folders_have_files():
    found = {_rel(p).rsplit("/", 1)[0] for p in _files(".trc", ".mot", ".sto")}
    for folder in ("GC5_PS/trc", "GC5_PS/grf", "GC5_PS/ik", "GC6_DM/motion_analysis", "opensim_walk"):
        assert folder in found, f"no .trc/.mot/.sto in {folder}; found {sorted(found)}"


@needs_data
@pytest.mark.parametrize("path", _files(".trc", ".mot", ".sto"), ids=_rel)
def test_every_real_file_reads_cleanly(path: Path):
    obj = _read(path)
    if path.suffix == ".trc":
        assert isinstance(obj, MarkerTrial)
        n, m = obj.n_frames, obj.n_markers
        assert obj.positions_m.shape == (n, m, 3) and obj.time_s.shape == (n,) and obj.frame.shape == (n,)
        assert len(obj.marker_names) == m == int(obj.header["NumMarkers"])
        assert n == int(obj.header["NumFrames"])
        assert obj.source_units == "mm" and obj.rate_hz == 120.0
        assert np.all(np.diff(obj.frame) == 1)
        finite = obj.positions_m[np.isfinite(obj.positions_m)]
        assert finite.size and np.abs(finite).max() < 3.0, "positions should be metres of a gait lab"
    else:
        assert isinstance(obj, TimeSeriesTable)
        assert obj.data.shape == (obj.time_s.size, len(obj.columns))
        if "nRows" in obj.header:
            assert obj.n_rows == int(obj.header["nRows"])
        if "nColumns" in obj.header:
            assert len(obj.columns) + 1 == int(obj.header["nColumns"])
        assert not np.isnan(obj.data).any()
    assert np.all(np.diff(obj.time_s) > 0)
    assert not obj.time_s.flags.writeable
    s = summarize(path)
    json.dumps(s, allow_nan=False)
    assert s["kind"] == path.suffix[1:] and s["frames"] == obj.time_s.size
    assert s["time_range_s"] == [pytest.approx(obj.time_s[0]), pytest.approx(obj.time_s[-1])]


# --------------------------------------------------------------------------------------------------
# facts from the README
# --------------------------------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize("trial", ["ss1", "ss3", "ss8"])
def test_ps_trc_is_120hz_mm_converted_to_plausible_metres(trial):
    t = _read(DATA / "GC5_PS" / "trc" / f"PS_ngait_og_{trial}.trc")
    assert t.rate_hz == 120.0 and t.source_units == "mm"
    assert 36 <= t.n_markers <= 39  # README: 36-39 markers
    # one left gait cycle, about 1.08 s
    assert t.duration_s == pytest.approx(1.08, abs=0.05)
    # magnitudes per marker within 0.01..3 m; y is up in OpenSim frames: sternum height for a 1.80 m man
    norms = np.linalg.norm(t.positions_m, axis=2)
    med = np.nanmedian(norms, axis=0)
    assert np.all((med > 0.01) & (med < 3.0)), dict(zip(t.marker_names, med))
    y = t.positions_m[..., 1]
    assert 0.0 < np.nanmin(y) < 0.05  # feet on the floor
    assert 1.3 < np.nanmedian(t.marker("Sternum")[:, 1]) < 1.6
    # walking along +x: the pelvis moves forward about one stride
    travel = t.marker("LAsis")[-1, 0] - t.marker("LAsis")[0, 0]
    assert 1.0 < travel < 2.0


@needs_data
def test_ps_ss1_blank_cells_are_nan():
    t = _read(DATA / "GC5_PS" / "trc" / "PS_ngait_og_ss1.trc")
    missing = np.isnan(t.positions_m).any(axis=2)
    j = t.marker_names.index("RMidfootSuperior")
    assert missing[:, j].sum() == 62  # frames 71..132 are blank in the file
    assert not missing[:70, j].any() and missing[70:, j].all()
    assert missing.sum() == 62  # and nothing else is missing
    assert t.zero_samples_masked == 0


@needs_data
@pytest.mark.parametrize("trial", ["ss1", "ss3", "ss8"])
def test_ps_grf_mot_1200hz_three_plates(trial):
    t = _read(DATA / "GC5_PS" / "grf" / f"PS_ngait_og_{trial}_kinetics.mot")
    assert t.rate_hz == pytest.approx(1200.0, rel=1e-6)
    plates = sorted({c.split("_", 1)[0] for c in t.columns if c.endswith("_ground_force_vx")})
    assert plates == ["1", "2", "3"]
    for k in plates:
        for suffix in ("vx", "vy", "vz", "px", "py", "pz"):
            t.column(f"{k}_ground_force_{suffix}")
        for suffix in ("x", "y", "z"):
            t.column(f"{k}_ground_torque_{suffix}")
        peak = t.column(f"{k}_ground_force_vy").max() / PS_BODY_WEIGHT_N
        assert 0.9 < peak < 1.5, f"plate {k} vertical peak {peak:.2f} BW"
    # same time base as the .trc (one cycle)
    trc = _read(DATA / "GC5_PS" / "trc" / f"PS_ngait_og_{trial}.trc")
    assert t.time_s[0] == trc.time_s[0] == 0.0
    assert t.duration_s == pytest.approx(trc.duration_s, abs=0.01)


@needs_data
@pytest.mark.parametrize("trial", ["ss1", "ss3", "ss8"])
def test_ps_ik_mot_in_degrees_knee_range(trial):
    t = _read(DATA / "GC5_PS" / "ik" / f"PS_ngait_og_{trial}_kinematics.mot")
    assert t.in_degrees is True and t.name == "Coordinates"
    assert len(t.columns) == 25 and t.rate_hz == pytest.approx(120.0, rel=1e-6)
    assert "Angles are in degrees." in t.comments
    for side in "lr":
        knee = t.column(f"knee_angle_{side}")
        assert np.all(np.abs(knee) <= 150.0)
        assert knee.max() > 45.0  # swing-phase flexion in degrees, not radians
    rad = t.to_radians()
    assert rad.in_degrees is False and rad.header["inDegrees"] == "no" and t.in_degrees is True
    np.testing.assert_allclose(rad.column("knee_angle_l"), np.deg2rad(t.column("knee_angle_l")))
    for c in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
        np.testing.assert_array_equal(rad.column(c), t.column(c))
    assert rad.to_radians() is rad
    assert "pelvis_ty" not in t.rotational_columns()


@needs_data
@pytest.mark.parametrize("path", sorted((DATA / "GC6_DM" / "motion_analysis").glob("*.trc")), ids=lambda p: p.name)
def test_dm_trc_68_markers_zeros_are_missing(path):
    t = _read(path)
    assert t.n_markers == 68 and t.rate_hz == 120.0 and t.source_units == "mm"
    assert 2.5 <= t.duration_s + 1 / t.rate_hz <= 3.25  # README: 2.5-3.2 s
    # Motion Analysis writes gaps and unused (static-trial) markers as 0 0 0
    assert t.zero_samples_masked > 0
    assert np.isnan(t.marker("Oglobal")).all() and np.isnan(t.marker("R_Knee_Medial")).all()
    raw = read_trc(path, zeros_as_missing=False)
    assert not np.isnan(raw.positions_m).any()
    assert np.all(raw.marker("Oglobal") == 0.0)
    assert np.isnan(t.positions_m).any(axis=2).sum() == t.zero_samples_masked


@needs_data
@pytest.mark.parametrize("path", sorted((DATA / "GC6_DM" / "motion_analysis").glob("*_grf.sto")), ids=lambda p: p.name)
def test_dm_grf_sto_opensim4_header(path):
    t = _read(path)
    assert t.header["version"] == "3" and t.header["OpenSimVersion"].startswith("4.")
    assert t.in_degrees is None
    assert t.rate_hz == pytest.approx(1200.0, rel=1e-3)
    assert {c for c in t.columns if c.endswith("_vy")} == {f"ground_force_{k}_vy" for k in (1, 2, 3)}
    peak = max(t.column(f"ground_force_{k}_vy").max() for k in (1, 2, 3)) / DM_BODY_WEIGHT_N
    assert 0.9 < peak < 1.5
    with pytest.raises(ValueError, match="inDegrees"):
        t.to_radians()


@needs_data
def test_to_radians_leaves_force_columns_alone():
    # OpenSim writes inDegrees=yes into GRF files; the force/torque/CoP columns must not be scaled
    t = _read(DATA / "GC5_PS" / "grf" / "PS_ngait_og_ss1_kinetics.mot")
    assert t.in_degrees is True
    assert t.rotational_columns() == ()
    np.testing.assert_array_equal(t.to_radians().data, t.data)


@needs_data
def test_rajagopal_beta_coordinates_can_be_excluded():
    # quirk: this file says inDegrees=yes but stores the coupled knee_angle_*_beta in radians
    t = _read(DATA / "opensim_walk" / "rajagopal" / "ik_output_walk.mot")
    np.testing.assert_allclose(np.deg2rad(t.column("knee_angle_r")), t.column("knee_angle_r_beta"), atol=1e-6)
    beta = ("knee_angle_r_beta", "knee_angle_l_beta")
    rad = t.to_radians(exclude=beta)
    np.testing.assert_allclose(rad.column("knee_angle_r"), rad.column("knee_angle_r_beta"), atol=1e-6)
    with pytest.raises(KeyError, match="knee_angle_r_beta"):
        t.to_radians(exclude=("knee_angle_r_betta",))


@needs_data
def test_column_keyerror_lists_close_matches():
    t = _read(DATA / "GC5_PS" / "ik" / "PS_ngait_og_ss1_kinematics.mot")
    with pytest.raises(KeyError) as exc:
        t.column("knee_angle_left")
    msg = str(exc.value)
    assert "knee_angle_left" in msg and "knee_angle_l" in msg and "PS_ngait_og_ss1_kinematics.mot" in msg
    np.testing.assert_array_equal(t.column("time"), t.time_s)
    trc = _read(DATA / "GC5_PS" / "trc" / "PS_ngait_og_ss1.trc")
    with pytest.raises(KeyError, match="Sternum"):
        trc.marker("sternum")


@needs_data
def test_opensim_to_z_up_on_real_markers():
    t = _read(DATA / "GC5_PS" / "trc" / "PS_ngait_og_ss3.trc")
    z_up = opensim_to_z_up(t.positions_m)
    assert z_up.shape == t.positions_m.shape
    np.testing.assert_array_equal(z_up[..., 2], t.positions_m[..., 1])  # height becomes z
    assert 1.3 < np.nanmedian(z_up[:, t.marker_names.index("Sternum"), 2]) < 1.6


def test_opensim_to_z_up_is_a_proper_rotation():
    eye = np.eye(3)
    r = opensim_to_z_up(eye).T  # columns: images of the OpenSim axes
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_array_equal(opensim_to_z_up([1.0, 0, 0]), [1, 0, 0])  # forward stays forward
    np.testing.assert_array_equal(opensim_to_z_up([0, 1.0, 0]), [0, 0, 1])  # up -> +z
    np.testing.assert_array_equal(opensim_to_z_up([0, 0, 1.0]), [0, -1, 0])  # right -> -y (y is left)
    assert np.isnan(opensim_to_z_up([np.nan, 0, 0])[0])
    with pytest.raises(ValueError, match="length 3"):
        opensim_to_z_up(np.zeros((4, 2)))


@needs_data
def test_fluoroscopy_sto_without_row_count():
    t = _read(DATA / "GC6_DM" / "fluoroscopy" / "Fluoroscopic_Gait_Data.sto")
    assert "nRows" not in t.header and t.in_degrees is None
    assert t.n_rows == 101 and t.columns[0] == "knee_ant_r"
    assert (t.time_s[0], t.time_s[-1]) == (0.0, 100.0)  # quirk: "time" is % of gait cycle


# --------------------------------------------------------------------------------------------------
# .c3d (optional dependency)
# --------------------------------------------------------------------------------------------------


def test_c3d_without_ezc3d_raises_import_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ezc3d", None)  # makes `import ezc3d` raise ImportError
    path = tmp_path / "x.c3d"
    path.write_bytes(b"")
    with pytest.raises(ImportError) as exc:
        read_trial(path)
    assert isinstance(exc.value, OptionalDependencyError)
    assert "ezc3d" in str(exc.value) and "x.c3d" in str(exc.value)


@needs_data
@pytest.mark.parametrize("trial", ["ss1", "ss3", "ss8"])
def test_ps_c3d_matches_readme_and_trc(trial):
    pytest.importorskip("ezc3d")
    c = read_c3d(DATA / "GC5_PS" / "c3d" / f"PS_ngait_og_{trial}.c3d")
    assert isinstance(c, C3DTrial)
    m = c.markers
    assert m.rate_hz == 120.0 and m.source_units == "mm" and 51 <= m.n_markers <= 56
    assert c.analog_rate_hz == 1200.0 and len(c.analog_labels) == 36
    assert c.analogs.shape == (10 * m.n_frames, 36)
    assert c.force_plate_count == 3 and c.force_plate_types == (2, 2, 2)
    assert c.analog_labels[:3] == ("Fx1", "Fy1", "Fz1") and "goniometer" in c.analog_labels
    assert c.analog_units[c.analog_labels.index("Mx1")] == "Nmm"
    # vertical force (lab z up, plates push up -> negative Fz in plate frame) about 1.1 BW
    assert 0.9 < -c.analog("Fz1").min() / PS_BODY_WEIGHT_N < 1.5
    # raw lab frame is z up (no rotation on reading)
    assert 1.3 < np.nanmedian(m.marker("Sternum")[:, 2]) < 1.6

    # the .trc is the same capture, rotated into OpenSim axes (x, y, z)_trc = (-x, z, y)_c3d and
    # starting at c3d frame OrigDataStartFrame
    trc = _read(DATA / "GC5_PS" / "trc" / f"PS_ngait_og_{trial}.trc")
    start = int(trc.header["OrigDataStartFrame"])
    i0 = int(np.flatnonzero(m.frame == start)[0])
    for j, name in enumerate(trc.marker_names):
        got = m.marker(name)[i0 : i0 + trc.n_frames]
        mapped = np.stack([-got[:, 0], got[:, 2], got[:, 1]], axis=1)
        np.testing.assert_array_equal(np.isnan(mapped), np.isnan(trc.positions_m[:, j]), err_msg=name)
        np.testing.assert_allclose(mapped, trc.positions_m[:, j], atol=1e-6, err_msg=name)
    s = summarize(DATA / "GC5_PS" / "c3d" / f"PS_ngait_og_{trial}.c3d")
    json.dumps(s, allow_nan=False)
    assert s["force_plates"] == 3 and s["n_analog_channels"] == 36


def _write_c3d(path: Path, units: str) -> None:
    ezc3d = pytest.importorskip("ezc3d")
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("A", "B")
    c["parameters"]["POINT"]["UNITS"]["value"] = [units]
    pts = np.ones((4, 2, 5))
    pts[:3, 0, :] = 10.0
    pts[:3, 1, :] = 0.0  # marker B at the origin: treated as missing
    c["data"]["points"] = pts
    c.write(str(path))


def test_c3d_units_converted_and_rejected(tmp_path):
    _write_c3d(tmp_path / "cm.c3d", "cm")
    t = read_c3d(tmp_path / "cm.c3d")
    np.testing.assert_allclose(t.markers.marker("A"), 0.1)
    assert np.isnan(t.markers.marker("B")).all() and t.markers.zero_samples_masked == 5
    assert t.force_plate_count == 0 and t.analogs.shape[1] == 0
    _write_c3d(tmp_path / "inch.c3d", "in")
    with pytest.raises(ValueError) as exc:
        read_c3d(tmp_path / "inch.c3d")
    assert "inch.c3d" in str(exc.value) and "POINT:UNITS" in str(exc.value) and "'in'" in str(exc.value)


# --------------------------------------------------------------------------------------------------
# synthetic and malformed files
# --------------------------------------------------------------------------------------------------


def _trc_text(
    *,
    units="mm",
    num_frames=None,
    num_markers=None,
    names=("A", "B"),
    rows=None,
    rate=100.0,
) -> str:
    if rows is None:
        rows = [[i + 1, i / rate] + [1000.0 * (i + 1)] * (3 * len(names)) for i in range(3)]
    num_frames = len(rows) if num_frames is None else num_frames
    num_markers = len(names) if num_markers is None else num_markers
    head = [
        "PathFileType\t4\t(X/Y/Z)\tt.trc",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate}\t{rate}\t{num_frames}\t{num_markers}\t{units}\t{rate}\t1\t{num_frames}",
        "Frame#\tTime\t" + "\t\t\t".join(names) + "\t\t",
        "\t\t" + "\t".join(f"{a}{k + 1}" for k in range(len(names)) for a in "XYZ"),
        "",
    ]
    body = ["\t".join("" if v is None else str(v) for v in r) for r in rows]
    return "\n".join(head + body) + "\n"


def _mot_text(*, n_rows=None, n_columns=None, rows=None, in_degrees="yes", cols=("knee_angle_r", "pelvis_tx")):
    if rows is None:
        rows = [[i * 0.01, 10.0 * i, 0.5] for i in range(3)]
    n_rows = len(rows) if n_rows is None else n_rows
    n_columns = len(cols) + 1 if n_columns is None else n_columns
    head = [
        "Coordinates",
        "version=1",
        f"nRows={n_rows}",
        f"nColumns={n_columns}",
        f"inDegrees={in_degrees}",
        "",
        "Units are S.I. units (second, meters, Newtons, ...)",
        "endheader",
        "time\t" + "\t".join(cols),
    ]
    body = ["\t".join(str(v) for v in r) for r in rows]
    return "\n".join(head + body) + "\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_trc_units_cm_m_and_blank_cells(tmp_path):
    for units, factor in (("mm", 1e-3), ("cm", 1e-2), ("m", 1.0), ("MM", 1e-3)):
        t = read_trc(_write(tmp_path, f"u_{units}.trc", _trc_text(units=units)))
        np.testing.assert_allclose(t.positions_m[1], 2000.0 * factor)
        assert t.source_units == units
    rows = [
        [1, 0.0, 1, 2, 3, 4, 5, 6],
        [2, 0.01, 1, 2, 3, None, None, None],  # marker B blank
        [3, 0.02, 1, 2, 3],  # row cut short after marker A (some exporters drop trailing blanks)
    ]
    t = read_trc(_write(tmp_path, "blank.trc", _trc_text(rows=rows)))
    assert t.frame.tolist() == [1, 2, 3] and t.marker_names == ("A", "B")
    assert np.isnan(t.marker("B")[1:]).all() and not np.isnan(t.marker("A")).any()
    np.testing.assert_allclose(t.marker("B")[0], [0.004, 0.005, 0.006])
    assert t.nan_fraction == pytest.approx(2 / 6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.rate_hz = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        t.positions_m[0, 0, 0] = 1.0


def test_trc_wrong_units_rejected(tmp_path):
    p = _write(tmp_path, "inches.trc", _trc_text(units="in"))
    with pytest.raises(ValueError) as exc:
        read_trc(p)
    msg = str(exc.value)
    assert "inches.trc" in msg and "'Units'" in msg and "'in'" in msg


def test_trc_num_markers_mismatch_rejected(tmp_path):
    p = _write(tmp_path, "markers.trc", _trc_text(num_markers=3))
    with pytest.raises(ValueError) as exc:
        read_trc(p)
    msg = str(exc.value)
    assert "markers.trc" in msg and "'NumMarkers'" in msg and "3" in msg and "names 2" in msg


def test_trc_num_frames_mismatch_warns(tmp_path):
    p = _write(tmp_path, "frames.trc", _trc_text(num_frames=5))
    with pytest.warns(LabFileWarning) as rec:
        t = read_trc(p)
    msg = str(rec[0].message)
    assert "frames.trc" in msg and "'NumFrames'" in msg and "5" in msg and "3 data rows" in msg
    assert t.n_frames == 3


def test_trc_rate_disagreeing_with_time_warns(tmp_path):
    rows = [[i + 1, i * 0.02, 1, 2, 3, 4, 5, 6] for i in range(4)]  # 50 Hz time column
    p = _write(tmp_path, "rate.trc", _trc_text(rows=rows, rate=100.0))
    with pytest.warns(LabFileWarning, match="'DataRate' declares 100 Hz"):
        read_trc(p)


def test_trc_non_numeric_and_non_monotonic_rejected(tmp_path):
    rows = [[1, 0.0, 1, 2, 3, 4, 5, 6], [2, 0.01, 1, 2, 3, 4, "x5", 6]]
    p = _write(tmp_path, "cell.trc", _trc_text(rows=rows))
    with pytest.raises(ValueError) as exc:
        read_trc(p)
    msg = str(exc.value)
    assert "cell.trc" in msg and "line 8" in msg and "'B.Y'" in msg and "'x5'" in msg

    rows = [[1, 0.0, 1, 2, 3, 4, 5, 6], [2, 0.01, 1, 2, 3, 4, 5, 6], [3, 0.005, 1, 2, 3, 4, 5, 6]]
    p = _write(tmp_path, "time.trc", _trc_text(rows=rows))
    with pytest.raises(ValueError) as exc:
        read_trc(p)
    msg = str(exc.value)
    assert "time.trc" in msg and "line 9" in msg and "0.005" in msg

    p = _write(tmp_path, "extra.trc", _trc_text(rows=[[1, 0.0, 1, 2, 3, 4, 5, 6, 7]]))
    with pytest.raises(ValueError, match=r"extra\.trc: line 7 has 9 cells"):
        read_trc(p)


def test_trc_header_problems_rejected(tmp_path):
    text = _trc_text().replace("PathFileType", "Bogus", 1)
    with pytest.raises(ValueError, match=r"bad1\.trc: line 1 should start with 'PathFileType'"):
        read_trc(_write(tmp_path, "bad1.trc", text))
    text = _trc_text().replace("DataRate\t", "Rate\t", 1)
    with pytest.raises(ValueError, match=r"bad2\.trc: header key 'DataRate' missing"):
        read_trc(_write(tmp_path, "bad2.trc", text))
    text = _trc_text(num_frames="many")
    with pytest.raises(ValueError, match=r"bad3\.trc: header key 'NumFrames' is not a number: 'many'"):
        read_trc(_write(tmp_path, "bad3.trc", text))


def test_mot_reads_and_converts(tmp_path):
    t = read_mot(_write(tmp_path, "ok.mot", _mot_text()))
    assert t.name == "Coordinates" and t.columns == ("knee_angle_r", "pelvis_tx") and t.in_degrees is True
    assert t.rate_hz == pytest.approx(100.0) and t.header["nRows"] == "3"
    r = t.to_radians()
    np.testing.assert_allclose(r.column("knee_angle_r"), np.deg2rad([0.0, 10.0, 20.0]))
    np.testing.assert_array_equal(r.column("pelvis_tx"), [0.5, 0.5, 0.5])
    # space-separated variant and trailing tabs on header lines are accepted too
    text = _mot_text().replace("\t", "  ").replace("version=1", "version=1\t\t\t")
    t2 = read_mot(_write(tmp_path, "spaces.mot", text))
    np.testing.assert_array_equal(t2.data, t.data)


def test_mot_row_and_column_counts_checked(tmp_path):
    p = _write(tmp_path, "rows.mot", _mot_text(n_rows=4))
    with pytest.raises(ValueError) as exc:
        read_mot(p)
    msg = str(exc.value)
    assert "rows.mot" in msg and "'nRows'" in msg and "declares 4" in msg and "3 data rows" in msg

    p = _write(tmp_path, "cols.mot", _mot_text(n_columns=4))
    with pytest.raises(ValueError) as exc:
        read_mot(p)
    msg = str(exc.value)
    assert "cols.mot" in msg and "'nColumns'" in msg and "declares 4" in msg and "3 labels" in msg

    rows = [[0.0, 1.0, 2.0], [0.01, 1.0]]
    p = _write(tmp_path, "short.mot", _mot_text(rows=rows))
    with pytest.raises(ValueError, match=r"short\.mot: line 11 has 2 cells but there are 3 column labels"):
        read_mot(p)


def test_mot_non_numeric_cell_rejected(tmp_path):
    rows = [[0.0, 1.0, 2.0], [0.01, "abc", 2.0]]
    p = _write(tmp_path, "cell.mot", _mot_text(rows=rows))
    with pytest.raises(ValueError) as exc:
        read_mot(p)
    msg = str(exc.value)
    assert "cell.mot" in msg and "line 11" in msg and "'knee_angle_r'" in msg and "'abc'" in msg


def test_mot_non_monotonic_time_rejected(tmp_path):
    rows = [[0.0, 1.0, 2.0], [0.02, 1.0, 2.0], [0.02, 1.0, 2.0], [0.01, 1.0, 2.0]]
    p = _write(tmp_path, "time.mot", _mot_text(rows=rows))
    with pytest.raises(ValueError) as exc:
        read_mot(p)
    msg = str(exc.value)
    assert "time.mot" in msg and "line 12" in msg and "data row 3" in msg and "0.02" in msg


def test_sto_opensim4_and_header_problems(tmp_path):
    text = "DataType=double\nversion=3\nOpenSimVersion=4.5\nendheader\ntime\ta\tb\n0\t1\t2\n0.5\t3\t4\n"
    t = read_sto(_write(tmp_path, "v4.sto", text))
    assert t.name == "v4" and t.in_degrees is None and t.header["OpenSimVersion"] == "4.5"
    assert t.rate_hz == pytest.approx(2.0) and t.data.tolist() == [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match=r"noend\.sto: no 'endheader' line"):
        read_sto(_write(tmp_path, "noend.sto", text.replace("endheader\n", "")))
    with pytest.raises(ValueError, match=r"deg\.sto: header key 'inDegrees' should be yes or no, found 'maybe'"):
        read_sto(_write(tmp_path, "deg.sto", text.replace("version=3", "inDegrees=maybe")))
    with pytest.raises(ValueError, match=r"notime\.sto: line 5: first column label should be 'time'"):
        read_sto(_write(tmp_path, "notime.sto", text.replace("time\ta", "frame\ta")))


def test_unknown_suffix_rejected(tmp_path):
    p = _write(tmp_path, "trial.csv", "a,b\n1,2\n")
    with pytest.raises(ValueError) as exc:
        read_trial(p)
    msg = str(exc.value)
    assert "trial.csv" in msg and "'.csv'" in msg
    for suffix in (".trc", ".mot", ".sto", ".c3d"):
        assert suffix in msg
    with pytest.raises(ValueError, match="supported"):
        summarize(p)


def test_read_trial_dispatch_and_summary(tmp_path):
    trc = _write(tmp_path, "UPPER.TRC", _trc_text())
    assert isinstance(read_trial(trc), MarkerTrial)
    s = summarize(trc)
    assert s["kind"] == "trc" and s["n_markers"] == 2 and s["units"] == "mm" and s["frames"] == 3
    assert s["rate_hz"] == 100.0 and s["duration_s"] == pytest.approx(0.02) and s["nan_fraction"] == 0.0
    mot = _write(tmp_path, "x.mot", _mot_text())
    s = summarize(mot)
    assert s["kind"] == "mot" and s["n_columns"] == 2 and s["units"] == "deg" and s["in_degrees"] is True
    json.dumps(s, allow_nan=False)
    assert isinstance(read_trial(_write(tmp_path, "x.sto", _mot_text())), TimeSeriesTable)


def test_shared_data_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("EXO_SHARED_DATA", str(tmp_path))
    assert lf.shared_data_dir() == tmp_path
    monkeypatch.delenv("EXO_SHARED_DATA")
    expected = (Path(lf.__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
    assert lf.shared_data_dir() == expected


READER_MODULES = ("lab_files", "reader_support", "axes", "marker_trial", "time_series", "trc", "storage", "c3d")


@pytest.mark.parametrize("module", READER_MODULES)
def test_models_package_stays_pure(module):
    src = (Path(lf.__file__).parent / f"{module}.py").read_text()
    for pkg in ("runtime", "controllers", "firmware_bridge", "hil"):
        assert f"from {pkg}" not in src and f"import {pkg}" not in src
