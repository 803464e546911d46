"""Calibrate the shipped model to one lab from its verified cells, and serve the active calibration.

Framework-free and numpy-only where the functions run: ``core`` (fit and judge from
embeddings), ``head`` (the refitted output layer), ``evaluate`` (held-out comparison, the
gate), ``registry`` (versions, the active pointer and the audit trail in a bucket),
``runtime`` (the predictor the pointer names, swapped between events). ``cells`` and
``service`` gather a lab's cells and run one calibration for the command line and web app
(``job``: the web app's one worker thread). ``reclassify`` re-runs a slide with the active
model, and ``rerun`` keeps the results it replaced in the slide's history. ``qc`` (rules and
documents), ``qcrun`` (runs) and ``qcdaily`` (the daily timer) keep a lab's fixed QC panel
measured after every change of model, and raise the drift alarm.
See docs/calibration.md.
"""
