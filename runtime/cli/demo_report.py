"""``exo demo``: record and print the vision front end's figures (:mod:`runtime.report.vision_live`)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runtime.report.vision_live import format_live_vision, live_vision_section


def record_live_vision(run_dir: str | Path, series: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Add :func:`live_vision_section` to ``<run_dir>/summary.json`` as ``vision_live`` (atomically) and print
    it; returns the section (None: no summary or no video input)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    sec = live_vision_section(doc, series)
    if sec is None:
        return None
    doc["vision_live"] = sec
    tmp = path.with_name("summary.json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)
    for line in format_live_vision(sec):
        print(line, flush=True)
    return sec
