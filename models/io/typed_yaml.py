"""Typed YAML documents: a strict pydantic base and loaders whose errors name the file, the key and the value.

Used for every configuration file of the project (``runtime.core.config``: device, subject, calibration;
``hil.scenario``: HIL scenarios). A rejected document raises ``ConfigError`` with one line per bad key::

    device.yaml: torque_loop.rate_hz = 5000: must be <= 1000 (allowed: 100 <= rate_hz <= 1000 Hz)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo


class ConfigError(ValueError):
    """A configuration file was rejected; ``problems`` lists one message per bad key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class Strict(BaseModel):
    """Unknown keys refused, values frozen and validated, no inf/NaN."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


M = TypeVar("M", bound=BaseModel)


def _field_for(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    """Follow ``loc`` through nested models and lists to the FieldInfo of the last key."""
    current: Any = model
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        ann = info.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return info


def _allowed(info: FieldInfo | None, key: str) -> str:
    if info is None:
        return ""
    bounds = {}
    for meta in info.metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            val = getattr(meta, attr, None)
            if val is not None:
                bounds[attr] = val
    parts = []
    lo = (f"{bounds['ge']} <= " if "ge" in bounds else f"{bounds['gt']} < " if "gt" in bounds else "")
    hi = (f" <= {bounds['le']}" if "le" in bounds else f" < {bounds['lt']}" if "lt" in bounds else "")
    if lo or hi:
        parts.append(f"{lo}{key}{hi}")
    if "min_length" in bounds or "max_length" in bounds:
        parts.append(f"length {bounds.get('min_length', 0)}..{bounds.get('max_length', 'any')}")
    if "pattern" in bounds:
        parts.append(f"pattern {bounds['pattern']}")
    unit = info.description.split(";")[0] if info.description else ""
    text = " and ".join(parts)
    if text and unit and len(unit) <= 12:
        text += f" {unit}"
    if not text:
        ann = info.annotation
        if getattr(ann, "__origin__", None) is Literal or str(ann).startswith("typing.Literal"):
            text = "one of " + ", ".join(repr(a) for a in ann.__args__)
    return text


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(source: str, model: type[BaseModel], err: ValidationError) -> ConfigError:
    """Turn pydantic's errors into one line per key: key, value, reason, allowed range."""
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = _dotted(loc)
        value = e.get("input")
        etype = e["type"]
        if etype == "extra_forbidden":
            parent = _field_for(model, loc[:-1])
            parent_model = model
            if parent is not None:
                ann = parent.annotation
                args = [ann, *getattr(ann, "__args__", ())]
                for a in args:
                    inner = [a, *getattr(a, "__args__", ())]
                    for b in inner:
                        if isinstance(b, type) and issubclass(b, BaseModel):
                            parent_model = b
            allowed = ", ".join(parent_model.model_fields)
            problems.append(f"{_dotted(loc)}: unknown key (value {value!r}); allowed keys here: {allowed}")
            continue
        if etype == "missing":
            problems.append(f"{key}: required key is missing")
            continue
        leaf = str(loc[-1]) if loc else key
        info = _field_for(model, loc)
        allowed = _allowed(info, leaf)
        msg = e["msg"]
        if etype == "value_error":
            msg = msg.removeprefix("Value error, ")
        shown = f" = {value!r}" if not isinstance(value, dict) else ""
        problems.append(f"{key}{shown}: {msg}" + (f" (allowed: {allowed})" if allowed else ""))
    return ConfigError(source, problems)


def parse(model: type[M], data: Any, source: str = "<config>") -> M:
    """Validate ``data`` (a mapping) as ``model``; raise ``ConfigError`` with key/value/range messages."""
    if not isinstance(data, dict):
        raise ConfigError(source, [f"top level must be a mapping of keys, got {type(data).__name__} {data!r:.60}"])
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(source, model, err) from None


def load(model: type[M], path: str | Path) -> M:
    """Read a YAML file and validate it as ``model``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path.name, [f"not valid YAML: {exc}"]) from None
    return parse(model, data if data is not None else {}, source=path.name)
