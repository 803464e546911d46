"""Reading terraform/ with python-hcl2, shared by the Cloud Run and the GKE tests."""

from __future__ import annotations

from typing import Any


def norm(value: Any) -> Any:
    """Strip python-hcl2's quoting and bookkeeping keys, recursively."""
    if isinstance(value, dict):
        return {norm(k): norm(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [norm(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value
