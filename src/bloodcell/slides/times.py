"""Times as the lab reads them: in its own time zone (``LAB_TIMEZONE``), to the second, zone named.

Records and results keep UTC with microseconds, which order them; people read
``2026-12-02 10:15:07 CET``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bloodcell.errors import ConfigurationError


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"LAB_TIMEZONE must be an IANA time zone like Europe/Paris, got {name!r}"
        ) from exc


def lab_time(value: str | datetime | None, name: str = "UTC") -> str:
    """``value`` (ISO text, Z or offset, or a datetime) in the lab's zone; unparseable text as it is."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(name)).strftime("%Y-%m-%d %H:%M:%S %Z")
