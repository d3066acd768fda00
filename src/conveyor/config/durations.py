"""Durations as a user writes them: ``500ms``, ``1s``, ``10m``, ``1h``, ``14d`` or a bare number of seconds.

Everything inside conveyor holds durations as float seconds. Plugin ``Options`` may declare a duration
field as plain ``float``: the loader converts a duration string given for such a field before validation
(:func:`convert_duration_fields`). Plugins may also annotate a field with :data:`Duration` to get the
same parsing wherever the model is validated.
"""

from __future__ import annotations

import math
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator

DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
HINT = "use e.g. 500ms, 1s, 10m, 1h or a number of seconds"
# Far beyond any timeout or retention anyone means, and far within what a date can be moved by: a deadline
# of now plus the longest duration is still a date.
MAX_SECONDS = 100 * 365 * 86400.0


def parse_duration(value: object) -> float:
    """Float seconds for a duration; ``ValueError`` for anything else (including negatives and booleans)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration ({HINT})")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative ({HINT})")
        return _bounded(float(value))
    if isinstance(value, str):
        match = DURATION_RE.match(value)
        if match:
            return _bounded(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        raise ValueError(f"invalid duration {value!r} ({HINT})")
    raise ValueError(f"expected a duration ({HINT})")


def _bounded(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError("a duration can be at most 100 years (36500d)")
    return seconds


def human(seconds: float) -> str:
    """``3600`` as ``1h``: the largest unit that writes it whole."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms"


def at_least(minimum: float) -> AfterValidator:
    """A duration field's lower bound, said in the units a user writes (``at least 1h``)."""

    def check(seconds: float) -> float:
        if seconds < minimum:
            raise ValueError(f"must be at least {human(minimum)}")
        return seconds

    return AfterValidator(check)


Duration = Annotated[float, BeforeValidator(parse_duration)]


def convert_duration_fields(options: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """Convert duration strings given for top-level ``float`` fields of ``options`` to seconds."""
    converted = dict(values)
    for name, field in options.model_fields.items():
        key = field.alias or name
        value = converted.get(key)
        if isinstance(value, str) and _is_float(field.annotation) and DURATION_RE.match(value):
            converted[key] = parse_duration(value)
    return converted


def _is_float(annotation: Any) -> bool:
    if annotation is float:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return float in get_args(annotation)
    return False
