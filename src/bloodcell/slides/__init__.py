"""The slide, modelled once: its vocabulary, its cells, its differential, its loader and its CSV.

Framework-free and the lowest of the slide layers: ``web``, ``review`` and
``reports`` import it, it imports none of them (an import-linter contract in
pyproject.toml keeps it so). Every page and every report format reads the same
``Cell`` and the same ``differential``, so a rule (what counts, what is flagged,
which reference range applies) is written in one place and shown the same everywhere.
"""
