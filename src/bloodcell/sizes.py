"""One way to write a size for people: binary units, so a limit reads the same on every page."""

from __future__ import annotations

_UNITS = ("bytes", "KiB", "MiB", "GiB")


def format_size(size: float) -> str:
    """``20971520`` -> ``"20 MiB"``, ``1572864`` -> ``"1.5 MiB"``; whole numbers lose their ``.0``."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)} bytes"
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {_UNITS[unit]}"
