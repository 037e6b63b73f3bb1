"""Prompts: box text, masks (synthetic and MediaPipe's on a real frame), anthropometric text into
the scaling's subject, interaction labels into the tracker's gates."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.vision.pose_types import BoundingBox
from runtime.vision.prompts import (Interaction, SubjectAttributes, mask_to_bbox, parse_bbox,  # noqa: F401
                                    parse_description, parse_interactions, split_description)


def test_parse_bbox_and_named_errors():
    assert parse_bbox(" 10, 20.5,30,40 ") == BoundingBox(10, 20.5, 30, 40)
    with pytest.raises(ValueError, match="bbox: expected 4 comma-separated numbers"):
        parse_bbox("1,2,3")
    with pytest.raises(ValueError, match=r"bbox.y1: not a number: 'abc'"):
        parse_bbox("1,2,3,abc")
    with pytest.raises(ValueError, match=r"bbox.x1: must be greater than x0=30, got 10"):
        parse_bbox("30,0,10,5")
    with pytest.raises(ValueError, match=r"bbox.y: 500..1000 is outside the frame height 0..994"):
        parse_bbox("1400,500,1700,1000", 1768, 994)
    with pytest.raises(ValueError, match=r"bbox.x0: must be finite"):
        parse_bbox("nan,0,1,1")


def test_mask_to_bbox_components():
    m = np.zeros((100, 200), np.float32)
    m[10:50, 20:60] = 0.9      # larger blob
    m[60:80, 150:170] = 0.8    # smaller blob
    m[90, 5] = 0.85            # a speck
    assert mask_to_bbox(m) == BoundingBox(20, 10, 60, 50)
    assert mask_to_bbox(m, point=(160, 70)) == BoundingBox(150, 60, 170, 80)
    assert mask_to_bbox((m > 0.5).astype(np.uint8) * 255) == BoundingBox(20, 10, 60, 50)
    with pytest.raises(ValueError, match=r"point: \(5, 5\) is not on the mask"):
        mask_to_bbox(m, point=(5, 5))
    with pytest.raises(ValueError, match="below min_pixels"):
        mask_to_bbox(m, point=(5, 90))
    with pytest.raises(ValueError, match="no pixel at or above threshold 0.95"):
        mask_to_bbox(m, threshold=0.95)
    with pytest.raises(ValueError, match=r"mask: expected a 2-D"):
        mask_to_bbox(np.zeros((2, 2, 2)))


def test_mask_prompt_on_real_frame(sports2d_video):
    """A click on the woman (frame 100 of the sports2d demo) → the pose model's person mask → her box,
    which must agree with her landmarks' box (she stands at x ≈ 920–1140, y ≈ 550–925)."""
    pytest.importorskip("mediapipe")
    from runtime.vision.frame_sources import VideoFileSource
    from runtime.vision.pose_mediapipe import MediaPipePose
    from runtime.vision.prompts import mask_prompt_from_point, selfie_mask

    frame = next(iter(VideoFileSource(sports2d_video, start=100, stop=101)))
    box, mask = mask_prompt_from_point(frame.image, (1030.0, 650.0), source="pose")
    assert mask.shape == frame.image.shape[:2]
    with MediaPipePose() as pose:
        ref = pose.infer(frame.image, 0, BoundingBox(880, 450, 1180, 990))
    assert ref is not None
    assert box.iou(ref.bbox) > 0.5, (box, ref.bbox)
    assert 1.0 < (box.y1 - box.y0) / (box.x1 - box.x0) < 4.0  # a standing person, not the scene
    s = selfie_mask(frame.image)
    assert s.shape == frame.image.shape[:2] and 0.0 <= s.min() and s.max() <= 1.0


@pytest.mark.parametrize("text,height,mass,sex,words", [
    ("tall male, 1.85 m, 90 kg", 1.85, 90.0, "male", ("tall",)),
    ("woman 60kg 165cm", 1.65, 60.0, "female", ()),
    ("man, 5'11\", 180 lb", 1.8034, 81.647, "male", ()),
    ("Female 1,62 m 55 kg slim", 1.62, 55.0, "female", ("slim",)),
    ("1800 mm", 1.8, None, None, ()),
    ("short woman", None, None, "female", ("short",)),
])
def test_parse_description(text, height, mass, sex, words):
    a = parse_description(text)
    assert (a.height_m, a.mass_kg, a.sex, a.words) == (height, mass, sex, words)


@pytest.mark.parametrize("text,match", [
    ("male 185", r"number\(s\) \['185'\] without a unit"),
    ("woman 60kg 70kg", r"description.mass: given 2 times \(60kg, 70kg\)"),
    ("1.85 m 190 cm", r"description.height: given 2 times"),
    ("1.85 m 900 kg", r"description.mass: '900 kg' = 900 kg is outside 20..250 kg"),
    ("man 18 m", r"description.height: '18 m' = 18 m is outside 0.5..2.5 m"),
    ("man woman", r"description.sex: contradictory"),
    ("  ", r"description: empty text"),
])
def test_parse_description_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_description(text)


def test_subject_attributes_feed_scaling():
    from models.body.scaling import SubjectScale

    s = parse_description("tall male, 1.85 m, 90 kg").to_subject_scale()
    assert s == SubjectScale(mass_kg=90.0, height_m=1.85)
    with pytest.raises(ValueError, match=r"description: no mass_kg given"):
        parse_description("woman 165cm").to_subject_scale()
    with pytest.raises(ValueError, match=r"height_m: 3 m is outside"):
        SubjectAttributes(height_m=3.0)


def test_interaction_labels_relax_tracker():
    from runtime.vision.tracking import TrackerSettings

    assert parse_interactions("close contact with a therapist, occlusion by the walker") == \
        Interaction(close_contact=True, occlusion=True, labels=("close_contact", "occlusion"))
    assert parse_interactions("walking alone") == Interaction()
    attrs, inter = split_description("woman 60kg 165cm, close-contact")
    assert (attrs.mass_kg, attrs.height_m, inter.close_contact, inter.occlusion) == (60.0, 1.65, True, False)
    base = TrackerSettings()
    relaxed = base.relaxed(Interaction(close_contact=True, occlusion=True))
    assert relaxed.min_iou == 0.0 < base.min_iou
    assert relaxed.appearance_max > base.appearance_max
    assert relaxed.max_extrapolate == 3 * base.max_extrapolate
    assert relaxed.height_ratio[0] < base.height_ratio[0] and relaxed.height_ratio[1] > base.height_ratio[1]
    assert base.relaxed(Interaction()) == base
