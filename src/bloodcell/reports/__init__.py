"""Per-slide reports a lab can file: statistics, FHIR R4, PDF and CSV.

Everything here reads one small typed input (``SlideReport``, built by
``loader.load_slide``) rather than result documents or review records directly,
so the formats stay testable without storage and the sources can change under them.
Needs the ``reports`` extra (scipy, reportlab); the function images never import it.
"""
