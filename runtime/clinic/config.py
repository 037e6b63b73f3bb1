"""``launch/config/clinic.yaml``: normal ranges beside each metric and the flag rules, each with its source.

Validated like the other configuration files (``runtime.core.config.parse``): unknown keys, wrong types and
unknown metrics are rejected naming the key and the value.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from runtime.core.config import ConfigError, _Strict, load

DEFAULT_CLINIC_CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config" / "clinic.yaml"


class MetricRange(_Strict):
    """Normal range of one metric (either bound may be absent) and where it comes from."""

    normal_low: float | None = None
    normal_high: float | None = None
    source: Annotated[str, Field(min_length=3)]
    verified: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "MetricRange":
        if self.normal_low is not None and self.normal_high is not None and self.normal_low >= self.normal_high:
            raise ValueError(f"normal_low = {self.normal_low} must be < normal_high = {self.normal_high}")
        return self


class FlagRule(_Strict):
    """A flag: the metric above / below a threshold, or risen by a fraction over the patient's first session."""

    metric: str
    above: float | None = None
    below: float | None = None
    rise_fraction: Annotated[float | None, Field(gt=0.0, le=10.0)] = None
    affected_limb_only: bool = False
    source: Annotated[str, Field(min_length=3)]

    @model_validator(mode="after")
    def _one_rule(self) -> "FlagRule":
        from runtime.clinic.schema import METRICS

        if self.metric not in METRICS:
            raise ValueError(f"metric = {self.metric!r}: not a stored metric ({', '.join(METRICS)})")
        given = [k for k in ("above", "below", "rise_fraction") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of above, below, rise_fraction (got {given or 'none'})")
        return self


class ClinicConfig(_Strict):
    store_url: Annotated[str, Field(min_length=3)] = "sqlite:///runs/clinic.db"
    metrics: dict[str, MetricRange]
    flags: dict[str, FlagRule] = {}

    @model_validator(mode="after")
    def _known_metrics(self) -> "ClinicConfig":
        from runtime.clinic.schema import METRICS

        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"metrics: unknown metric(s) {unknown}; allowed: {', '.join(METRICS)}")
        return self


def load_clinic_config(path: str | Path = DEFAULT_CLINIC_CONFIG) -> ClinicConfig:
    """Read and validate a clinic configuration (``ConfigError`` naming the key and value)."""
    return load(ClinicConfig, path)


__all__ = ["ClinicConfig", "ConfigError", "DEFAULT_CLINIC_CONFIG", "FlagRule", "MetricRange", "load_clinic_config"]
