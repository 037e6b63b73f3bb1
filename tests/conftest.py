import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CONFIG_DIR = REPO / "launch" / "config"

# Property tests are deterministic: the same examples on every run and machine (seeded by the test's name), no
# example database carried between runs.  A failure found once is then a failure every time, never a flaky CI.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("deterministic", derandomize=True, database=None)
    _hyp_settings.load_profile("deterministic")
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def configs():
    from runtime.core.config import load_calibration, load_device, load_subject

    return (load_device(CONFIG_DIR / "device.yaml"), load_subject(CONFIG_DIR / "subject.yaml"),
            load_calibration(CONFIG_DIR / "calibration.yaml"))


@pytest.fixture(scope="session")
def sports2d_video() -> Path:
    """The sports2d demo video (cache, else one fetch per session); the test skips when it cannot be obtained."""
    from _support import footage_or_skip

    return footage_or_skip("sports2d_demo_video")


@pytest.fixture(scope="session")
def pose2sim_demo() -> dict:
    """The pose2sim single-person demo (videos, calibration, config); skips when it cannot be obtained."""
    from _support import footage_or_skip

    return footage_or_skip("pose2sim_single_person")
