"""Image sinks for reports: only anonymised frames can be written as pictures.

The report writer is the one place that turns a camera frame into a file a person looks
at (PNG). It takes an :class:`runtime.core.privacy.AnonymizedFrame` and refuses anything else
(:class:`runtime.core.privacy.PrivacyViolation`), so a raw frame cannot end up in a report by
mistake. Pixels are written as they are: RGB uint8, (H, W, 3), image frame ``camera``
(x right, y down, origin top-left).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.core.privacy import AnonymizedFrame, require_anonymized


def _rgb(frame: AnonymizedFrame, sink: str) -> np.ndarray:
    frame = require_anonymized(frame, sink)
    img = frame.image
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{sink}: AnonymizedFrame.image has shape {img.shape} dtype {img.dtype}; "
                         "expected (H, W, 3) uint8 RGB")
    return img


def encode_png(frame: AnonymizedFrame) -> bytes:
    """PNG bytes of an anonymised frame."""
    import cv2

    img = _rgb(frame, "report PNG encoder")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode a PNG")
    return buf.tobytes()


def write_report_image(frame: AnonymizedFrame, path: str | Path) -> Path:
    """Write *frame* as a PNG at *path* (parent folders created); returns the path."""
    frame = require_anonymized(frame, f"report image {path}")
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"report image path {p}: suffix {p.suffix!r}, expected .png")
    data = encode_png(frame)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


__all__ = ["encode_png", "write_report_image"]
