"""Training and evaluation of the white-cell model: `python -m training.train`, `python -m training.evaluate`.

A package, so its modules import each other as ``training.<module>`` with the repository root on the
path (`python -m` from the root, or pytest), and `bloodcell` from `src/` (PYTHONPATH=src, or installed).
"""
