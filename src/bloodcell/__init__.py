"""bloodcell: event-driven white-blood-cell classification (shared package)."""

__version__ = "0.1.0"
