"""Vision front end: frames in, anonymised frames and BlazePose landmarks out.

Data flows one way through this package::

    frame_sources  ->  anonymise  ->  pose backends (reference: mediapipe; production: ONNX)
                   ->  prompts / tracking of the prompted person  ->  world grounding

Shared types live in :mod:`runtime.vision.pose_types`; the privacy gate (only
anonymised frames may leave the vision stage) in :mod:`runtime.core.privacy`.
"""
