"""The lab recordings in ``../shared/data`` (see its README) as a list of trials with their files and subject.

PS (Grand Challenge 5, left knee, eTibia implant): ss1, ss3, ss8; DM (Grand Challenge 6, right knee):
og1, og3, og4, og5, og6. Paths are built, not checked: a caller skips a trial whose files are absent.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SharedTrial:
    name: str
    trc: str
    markerset: str
    grf: str
    ik_ref: str | None
    kcf_ref: str | None
    mass_kg: float
    height_m: float
    side: str


def shared_trials(data: Path) -> list[SharedTrial]:
    """The recordings in ../shared/data (see its README): PS ss1/3/8 (left knee), DM og1/3/4/5/6 (right knee)."""
    trials = []
    for n in (1, 3, 8):
        g = data / "GC5_PS"
        trials.append(SharedTrial(f"PS_ss{n}", str(g / "trc" / f"PS_ngait_og_ss{n}.trc"), str(g / "model" / "GC5.osim"),
                                  str(g / "grf" / f"PS_ngait_og_ss{n}_kinetics.mot"),
                                  str(g / "ik" / f"PS_ngait_og_ss{n}_kinematics.mot"),
                                  str(g / "in_vivo" / f"PS_ngait_og_ss{n}_eTibia_101pt.csv"), 75.0, 1.80, "left"))
    for n in (1, 3, 4, 5, 6):
        g = data / "GC6_DM"
        trials.append(SharedTrial(f"DM_og{n}", str(g / "motion_analysis" / f"DM_ngait_og{n}_new.trc"),
                                  str(g / "model" / "DM_markers.xml"), str(g / "motion_analysis" / f"DM_ngait_og{n}_grf.sto"),
                                  None, None, 70.0, 1.72, "right"))
    return trials
