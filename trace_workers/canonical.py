"""Canonical JSON text and the comparison of a returned value with the expected output."""

from __future__ import annotations

import json
import math
from typing import Any


def canonical_json(value: Any) -> str:
    """One text per JSON value: sorted keys, no spaces, UTF-8 kept. Used for de-duplication."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def values_match(returned: Any, expected: Any, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """Equality as JSON sees it, with a tolerance for floats.

    Tuples and lists are the same JSON array; dict keys are strings; ``1 == 1.0`` (one JSON
    number) but ``True != 1`` (JSON has booleans); NaN equals NaN.
    """
    if isinstance(returned, bool) or isinstance(expected, bool):
        return type(returned) is type(expected) and returned == expected
    if isinstance(returned, (int, float)) and isinstance(expected, (int, float)):
        if isinstance(returned, int) and isinstance(expected, int):
            return returned == expected
        if math.isnan(returned) or math.isnan(expected):
            return math.isnan(returned) and math.isnan(expected)
        return math.isclose(returned, expected, rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(returned, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(returned) == len(expected) and all(
            values_match(r, e, rel_tol, abs_tol) for r, e in zip(returned, expected, strict=True)
        )
    if isinstance(returned, dict) and isinstance(expected, dict):
        if len(returned) != len(expected):
            return False
        expected_by_key = {str(k): v for k, v in expected.items()}
        return all(
            str(k) in expected_by_key and values_match(v, expected_by_key[str(k)], rel_tol, abs_tol)
            for k, v in returned.items()
        )
    return type(returned) is type(expected) and returned == expected


def python_values_match(returned: Any, expected: Any, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """Equality as Python sees it (call format): a tuple is not a list, sets compare as sets,
    dict keys keep their types, ``True == 1``; floats within a tolerance, NaN equals NaN."""
    if isinstance(returned, float) or isinstance(expected, float):
        if not isinstance(returned, (int, float)) or not isinstance(expected, (int, float)):
            return False
        if math.isnan(returned) or math.isnan(expected):
            return math.isnan(returned) and math.isnan(expected)
        return math.isclose(returned, expected, rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(returned, (list, tuple)) and isinstance(expected, (list, tuple)):
        return type(returned) is type(expected) and len(returned) == len(expected) and all(
            python_values_match(r, e, rel_tol, abs_tol) for r, e in zip(returned, expected, strict=True))
    if isinstance(returned, dict) and isinstance(expected, dict):
        return returned.keys() == expected.keys() and all(
            python_values_match(returned[k], expected[k], rel_tol, abs_tol) for k in returned)
    try:
        return bool(returned == expected)
    except Exception:  # a value whose __eq__ raises is not equal
        return False
