"""The vision front end's figures of a video run (``exo demo``): live (rate achieved, drops with their reason, pose
and anonymisation cost, capture -> CAN latency with pose included) or ``--replay-landmarks`` (named as such);
the ``vision_live`` section of ``summary.json``, its text lines (console and ``report.html``)."""
from __future__ import annotations

from typing import Any


def live_vision_section(doc: dict[str, Any], series: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The ``vision_live`` section from a run's ``summary.json`` document ``doc`` (None without a video input);
    ``series`` (``runtime.report.summary.load_series``) adds the capture -> CAN write latency."""
    inp = doc.get("input") or {}
    if "video" not in inp:
        return None
    out: dict[str, Any] = {"mode": inp.get("mode", "live" if inp.get("live_vision") else "replay-landmarks")}
    est = doc.get("estimation") or {}
    if est.get("cycles") is not None:
        expected = max(int(est.get("expected_cycles") or est["cycles"]), 1)
        out["estimation_missed"] = {"missed": int(est.get("missed", 0)), "cycles": int(est["cycles"]),
                                    "missed_frac": float(est.get("missed", 0)) / expected}
    if series is not None:
        from runtime.report.summary import performance

        e = performance(series)["end_to_end_s"]
        if e.get("count"):
            out["capture_to_can_ms"] = {k: (v * 1e3 if k != "count" else v) for k, v in e.items()}
    vision = ((doc.get("stages") or {}).get("capture") or {}).get("vision") or {}
    if out["mode"] == "live":
        out.update({k: vision[k] for k in ("live", "grabber", "errors", "preload", "pinned") if k in vision})
        fe = vision.get("front_end") or {}
        if "anonymisation" in fe:
            out["anonymisation"] = fe["anonymisation"]
        out["tracker"] = {k: fe.get(k) for k in ("tracked", "lost", "grounded", "detector_runs", "before_prompt")}
    return out


def format_live_vision(sec: dict[str, Any]) -> list[str]:
    """Report lines of :func:`live_vision_section`."""
    def pp(d: dict[str, Any] | None) -> str:
        return f"p50 {d['p50']:.1f} / p99 {d['p99']:.1f} ms" if d and d.get("count") else "n/a"

    lines = []
    e2e = sec.get("capture_to_can_ms")
    if sec["mode"] != "live":
        lines.append("vision: --replay-landmarks: landmarks computed ahead and released on the video's timeline "
                     "(pose not in the live path; capture -> CAN excludes pose)")
    else:
        lv, gb = sec.get("live") or {}, sec.get("grabber") or {}
        reasons = ", ".join(f"{k} {v}" for k, v in sorted((gb.get("dropped_by_reason") or {}).items(),
                                                            key=lambda kv: -kv[1])) or "none"
        lines.append(f"vision (live, own process): {lv.get('processed', 0)} of {lv.get('produced', 0)} frames "
                     f"processed, {lv.get('rate_hz') or 0:.1f} frames/s of the camera's {lv.get('camera_fps') or 0:g}; "
                     f"dropped {lv.get('dropped', 0)} ({100 * lv.get('dropped_frac', 0):.1f} %; busy with: {reasons})")
        lines.append(f"  pose (landmarks + detector when run) {pp(lv.get('pose_ms'))}; tracked without detector "
                     f"{pp(lv.get('pose_tracked_ms'))}; {lv.get('detector_frames', 0)} frames with the detector "
                     f"{pp(lv.get('pose_with_detector_ms'))}")
        pre, pin = sec.get("preload"), sec.get("pinned") or {}
        if pre:
            lines.append(f"  camera emulated from the file: {pre['frames']} frames decoded into memory before the clock "
                         f"started ({pre['bytes'] / 2**30:.2f} GiB, {pre['decode_s']:.1f} s; a camera hands over decoded "
                         "frames, so no decode runs in the live path)")
        if pin:
            lines.append(f"  vision process pinned to cpus {list(pin.get('cpus') or [])}"
                         + (f" ({'; '.join(pin['notes'])})" if pin.get("notes") else ""))
        an = sec.get("anonymisation") or {}
        lines.append(f"  anonymisation per frame (inline, bounded) {pp(an.get('inline_ms'))}; face detectors every "
                     f"{an.get('detect_every', '?')} frames (included) {pp(an.get('face_pass_ms'))}; full pass on "
                     f"the {an.get('written', 0)} frames that left {pp(an.get('full_pass_ms'))} (after the run)")
        lines.append(f"  capture -> landmarks published {pp(lv.get('publish_ms'))}; whole frame {pp(lv.get('frame_ms'))}")
        if sec.get("errors"):
            lines.append(f"  vision process stopped early: {'; '.join(sec['errors'])}")
    if e2e:
        lines.append(f"  capture -> CAN write{' (pose included)' if sec['mode'] == 'live' else ''}: "
                     f"{pp(e2e)}, max {e2e['max']:.1f} ms over {e2e['count']} commands")
    m = sec.get("estimation_missed")
    if m:
        lines.append(f"  estimation loop: {m['missed']} of {m['cycles']} cycles missed ({100 * m['missed_frac']:.1f} %)")
    return lines
