"""The privacy gate: only anonymised frames may leave the vision stage.

The seed requires faces to be blurred on the device before any frame is stored, logged,
shown or sent. Every sink that accepts images (ROS 2 image topics, DDS, the MCAP log, report
images, video writers) takes an :class:`AnonymizedFrame` and calls :func:`require_anonymized`
on what it is given; only :mod:`runtime.vision.anonymise` creates one (it holds the private
token), so a raw ``numpy`` frame cannot reach a sink by mistake.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TOKEN = object()


class PrivacyViolation(TypeError):
    """A raw (not anonymised) frame was offered to a sink."""


@dataclass(frozen=True)
class AnonymizedFrame:
    """An RGB uint8 frame (H, W, 3) whose face regions have been blurred.

    ``regions`` lists the blurred boxes in pixels (x0, y0, x1, y1) and ``sources`` why each
    was blurred ("face-detector", "pose-head"). Construct only through
    :func:`runtime.vision.anonymise.anonymize` (enforced by the token).
    """

    image: np.ndarray
    t_capture_ns: int
    regions: tuple[tuple[int, int, int, int], ...]
    sources: tuple[str, ...]
    _token: object

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise PrivacyViolation("AnonymizedFrame can only be created by runtime.vision.anonymise")
        self.image.setflags(write=False)


def _issue(image: np.ndarray, t_capture_ns: int, regions, sources) -> AnonymizedFrame:
    """Internal: wrap an already-blurred image (called by runtime.vision.anonymise only)."""
    return AnonymizedFrame(image, int(t_capture_ns), tuple(tuple(int(v) for v in r) for r in regions),
                           tuple(sources), _TOKEN)


def require_anonymized(frame: object, sink: str) -> AnonymizedFrame:
    """Return ``frame`` if it is an :class:`AnonymizedFrame`, else raise :class:`PrivacyViolation` naming ``sink``."""
    if not isinstance(frame, AnonymizedFrame):
        raise PrivacyViolation(f"{sink}: refused a frame of type {type(frame).__name__}; "
                               "only anonymised frames (runtime.vision.anonymise) may be written or sent")
    return frame
