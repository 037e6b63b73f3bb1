"""A short real-time run of hil/scenarios/cuff.yaml (`exo hil`: replayed trial -> 60 Hz estimation -> 500 Hz torque
process -> plant process over udp_multicast CAN in a private network namespace), rigid / cuff without / cuff with the
tissue compensator. Robust on a busy 2-core box: it asserts the physics and the bookkeeping (the compensator cuts the
cuff's tracking error, every leg's figures are there and add up), not the timings (missed deadlines and ticks are
reported by the run; the exit code, which includes them, is not asserted)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from _support import REPO, exo_cmd

needs_netns = pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("ip"),
                                 reason="needs unshare (util-linux) and ip (iproute2) for a private network namespace")


@needs_netns
@pytest.mark.timeout(400)
def test_cuff_scenario_short(tmp_path):
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("unshare -n not permitted here (needs root or CAP_SYS_ADMIN)")
    sc = yaml.safe_load((REPO / "hil" / "scenarios" / "cuff.yaml").read_text())
    for key in ("device", "subject", "calibration"):
        sc[key] = str((REPO / "hil" / "scenarios" / sc[key]).resolve())
    sc.update(duration_s=7.0, discard_s=3.0)
    path = tmp_path / "cuff_short.yaml"
    path.write_text(yaml.safe_dump(sc))
    out = tmp_path / "run"
    p = subprocess.run(exo_cmd() + ["hil", str(path), "--out", str(out)], check=False, cwd=REPO, capture_output=True, text=True,
                       timeout=380)
    assert p.returncode in (0, 1), p.stdout[-3000:] + p.stderr[-3000:]
    print("\n" + "\n".join(line for line in p.stdout.splitlines() if line.startswith(("rigid:", "cuff_", "checks:"))))
    doc = json.loads((out / "hil_compare.json").read_text())
    legs = doc["legs"]
    stalls = {k: v["faults"] for k, v in legs.items() if any(t in f for f in v.get("faults", []) for t in
                                                            (":STALE", ":TIMEOUT"))}
    if stalls:   # a host stall (busy machine) latched a timing fault: no ACTIVE window left to score the physics in
        pytest.skip(f"timing faults latched by a stall of this machine, not a physics result: {stalls}")
    assert set(legs) == {"rigid", "cuff_off", "cuff_on"} and not any("error" in v for v in legs.values())
    off, on, rigid = (legs[k]["tracking"] for k in ("cuff_off", "cuff_on", "rigid"))
    # physics: the cuff's link inertia costs tracking; the compensator takes most of it back (issue 21: <= 35 %)
    assert off["rmse_nm"] > 3 * rigid["rmse_nm"]
    assert on["rmse_nm"] <= 0.35 * off["rmse_nm"]
    assert doc["checks"]["rmse_ratio_on_off"]["value"] == pytest.approx(on["rmse_nm"] / off["rmse_nm"])
    assert off["energy_absorbed_j_per_stride"] is not None and rigid["energy_absorbed_j_per_stride"] is None
    # the compensator ran in the torque loop on the encoder (the replayed walker's knee is withheld), only when on
    assert legs["cuff_on"]["knee_source_cycles"]["joint"] > 0.9 * legs["cuff_on"]["torque_loop"]["cycles"]
    assert legs["cuff_on"]["knee_source_cycles"]["estimate"] == 0 and legs["cuff_off"]["knee_source_cycles"] is None
    for name, leg in legs.items():
        pl = leg["plant"]
        assert pl["model"] == leg["plant_model"]
        # bookkeeping: ticks run + missed cover the plant's life at 1 kHz; the percentage is the share missed
        assert pl["ticks"] + pl["missed_ticks"] >= 1000 * 7.0
        assert pl["missed_ticks_pct"] == pytest.approx(100.0 * pl["missed_ticks"] / (pl["ticks"] + pl["missed_ticks"]))
        assert leg["torque_loop"]["cycles"] > 0.9 * 500 * 7.0 and leg["can_command_to_reply_ms"]["count"] > 0
        assert f"plant_missed_ticks_pct_{name}" in doc["checks"]
    page = (out / "report.html").read_text()
    assert "<script" not in page and "http" not in page.split("<body>", 1)[1]
    assert all(f"<th>{k}</th>" in page for k in legs) and "data:image/png;base64," in page
