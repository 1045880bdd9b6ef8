"""Strict JSON out of results that hold NaN and numpy values: ``null`` where a number is undefined;
and the one reader of a JSON file a user hands us (:func:`read_document`).

Python's ``json`` writes NaN and Infinity, which strict parsers (JavaScript's ``JSON.parse``, jq,
most other languages) reject. Every JSON file of results the trainer writes (``eval.json``, the
event log, a prediction's JSON, the benchmarks' ``results.json``) goes through :func:`dumps`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError


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


def read_document(path: str | Path, what: str, expect: type | tuple[type, ...] = dict,
                  expected: str | None = None) -> Any:
    """The JSON document in ``path`` (UTF-8, a BOM allowed), or one :class:`InputError` naming the
    file: missing or unreadable, not UTF-8, invalid JSON (line and column), or not of type
    ``expect`` (``expected`` says what was, e.g. ``"expected a JSON object with a 'classes' list"``).
    Messages begin ``cannot read <what>`` where the file could not be parsed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"cannot read {what}: file not found", path) from None
    except OSError as e:
        raise InputError(f"cannot read {what} ({e.strerror or e})", path) from None
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"cannot read {what}: not UTF-8 text", path) from None
    except json.JSONDecodeError as e:
        raise InputError(f"cannot read {what}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                         path) from None
    if not isinstance(doc, expect):
        raise InputError(expected or f"{what} must be a JSON {getattr(expect, '__name__', expect)}", path)
    return doc
