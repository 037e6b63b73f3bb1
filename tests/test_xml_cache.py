"""Each XML file parsed once per version (models/io/xml_cache.py) by the marker-set and muscle-strength readers;
results are copies, a rewritten file is read again, errors are not cached."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from models.body.markerset import _parse_markers, from_opensim_markerset, read_osim_bodies
from models.body.scaling import opensim_max_isometric_forces
from models.io.xml_cache import cached_xml, clear_xml_cache, osim_has_body_set, xml_cache_stats

OSIM = """<?xml version="1.0"?>
<OpenSimDocument Version="40000"><Model name="tiny">
 <BodySet><objects><Body name="pelvis"/><Body name="femur_r"/></objects></BodySet>
 <JointSet><objects><PinJoint name="hip_r"><socket_parent_frame>pelvis_offset</socket_parent_frame>
  <socket_child_frame>femur_r_offset</socket_child_frame>
  <frames><PhysicalOffsetFrame name="pelvis_offset"><socket_parent>/bodyset/pelvis</socket_parent>
   <translation>-0.05 -0.08 0.08</translation><orientation>0 0 0</orientation></PhysicalOffsetFrame>
  <PhysicalOffsetFrame name="femur_r_offset"><socket_parent>/bodyset/femur_r</socket_parent>
   <translation>0 0 0</translation><orientation>0 0 0</orientation></PhysicalOffsetFrame></frames>
 </PinJoint></objects></JointSet>
 <ForceSet><objects><Millard2012EquilibriumMuscle name="vasint_r"><max_isometric_force>{f0}</max_isometric_force>
 </Millard2012EquilibriumMuscle></objects></ForceSet>
 <MarkerSet><objects><Marker name="RASI"><socket_parent_frame>/bodyset/pelvis</socket_parent_frame>
  <location>0.01 0.02 0.12</location></Marker>
  <Marker name="RKNE"><socket_parent_frame>/bodyset/femur_r</socket_parent_frame>
  <location>0 -0.4 0.05</location></Marker></objects></MarkerSet>
</Model></OpenSimDocument>
"""


@pytest.fixture()
def osim(tmp_path):
    clear_xml_cache()
    p = tmp_path / "tiny.osim"
    p.write_text(OSIM.format(f0="1500"))
    return p


def test_one_parse_serves_every_reader(osim):
    bodies = read_osim_bodies(osim)
    markers = _parse_markers(osim)
    f0 = opensim_max_isometric_forces(osim)
    assert osim_has_body_set(osim)
    ms = from_opensim_markerset(osim)
    assert xml_cache_stats()["parses"] == 1 and xml_cache_stats()["files"] == 1
    np.testing.assert_allclose(bodies["femur_r"].origin_in_parent_m, [-0.05, -0.08, 0.08])
    assert [m[0] for m in markers] == ["RASI", "RKNE"] and f0 == {"vasint_r": 1500.0}
    assert ms.names == ("RASI", "RKNE")
    # fresh copies: what one caller edits, the next does not see
    bodies["femur_r"].origin_in_parent_m[:] = 9.0
    markers[0][2][:] = 9.0
    f0["vasint_r"] = 1.0
    np.testing.assert_allclose(read_osim_bodies(osim)["femur_r"].origin_in_parent_m, [-0.05, -0.08, 0.08])
    np.testing.assert_allclose(_parse_markers(osim)[0][2], [0.01, 0.02, 0.12])
    assert opensim_max_isometric_forces(osim) == {"vasint_r": 1500.0}
    assert xml_cache_stats()["parses"] == 1


def test_a_rewritten_file_is_read_again(osim):
    assert opensim_max_isometric_forces(osim) == {"vasint_r": 1500.0}
    st = osim.stat()
    osim.write_text(OSIM.format(f0="2500"))                       # same size: the mtime tells
    os.utime(osim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert opensim_max_isometric_forces(osim) == {"vasint_r": 2500.0}
    assert xml_cache_stats()["parses"] == 2 and xml_cache_stats()["files"] == 1


def test_errors_are_raised_every_time_and_not_cached(tmp_path):
    clear_xml_cache()
    bad = tmp_path / "bad.osim"
    bad.write_text("<OpenSimDocument><Model>")
    for _ in range(2):
        with pytest.raises(ET.ParseError):
            read_osim_bodies(bad)
        with pytest.raises(ValueError, match="cannot read an OpenSim model"):
            opensim_max_isometric_forces(bad)
    with pytest.raises(FileNotFoundError):
        cached_xml(tmp_path / "absent.osim")
    zero = tmp_path / "zero.osim"
    zero.write_text(OSIM.format(f0="0"))
    with pytest.raises(ValueError, match=r"vasint_r.*must be > 0 N"):
        opensim_max_isometric_forces(zero)
    with pytest.raises(ValueError, match=r"vasint_r.*must be > 0 N"):
        opensim_max_isometric_forces(zero)
    assert xml_cache_stats()["files"] == 1                       # zero.osim parsed; the bad file never stored


def test_the_cache_is_bounded(tmp_path, monkeypatch):
    from models.io import xml_cache

    clear_xml_cache()
    monkeypatch.setattr(xml_cache, "MAX_FILES", 3)
    paths = []
    for k in range(5):
        p = tmp_path / f"m{k}.osim"
        p.write_text(OSIM.format(f0=str(1000 + k)))
        paths.append(p)
        assert opensim_max_isometric_forces(p) == {"vasint_r": 1000.0 + k}
    assert xml_cache_stats()["files"] == 3
    assert opensim_max_isometric_forces(paths[0]) == {"vasint_r": 1000.0}   # dropped, read again
    assert xml_cache_stats()["parses"] == 6
