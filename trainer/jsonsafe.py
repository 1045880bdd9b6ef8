"""Strict JSON out of results that hold NaN and numpy values: ``null`` where a number is undefined.

Python's ``json`` writes NaN and Infinity, which strict parsers (JavaScript's ``JSON.parse``, jq,
most other languages) reject. Every JSON file of results the trainer writes (``eval.json``, the
event log, a prediction's JSON, the benchmarks' ``results.json``) goes through :func:`dumps`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def clean(obj: Any) -> Any:
    """A JSON-safe copy: NaN and ±inf → ``None``; numpy scalars and arrays → Python numbers and lists;
    tuples → lists; dict keys → strings."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """``json.dumps`` of :func:`clean` ``(obj)``, refusing NaN (never written); objects JSON does not
    know become their ``str``."""
    kwargs.setdefault("default", str)
    return json.dumps(clean(obj), allow_nan=False, **kwargs)
