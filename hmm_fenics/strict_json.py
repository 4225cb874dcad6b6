"""Strict JSON output: every results file is RFC 8259 JSON, NaN and infinity written as null.

Python's ``json`` writes ``NaN`` and ``Infinity``, which other JSON readers refuse; a
porous cell's undefined entries and a check that was not run are NaN. Every JSON writer
of the package and the demos goes through ``dumps``.
"""

import json
import math
from typing import Any


def finite_or_null(data: Any) -> Any:
    """``data`` with every non-finite float replaced by None (tables, lists, tuples, arrays).

    NumPy arrays and scalars become lists and Python numbers first.
    """
    if hasattr(data, "tolist") and not isinstance(data, str | bytes):
        data = data.tolist()
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_null(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite_or_null(value) for value in data]
    return data


def dumps(data: Any) -> str:
    """Strict JSON text of ``data``, indented, with a final newline (NaN, ±inf → null)."""
    return json.dumps(finite_or_null(data), indent=2, allow_nan=False) + "\n"
