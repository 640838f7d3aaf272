"""Metrics: a cell's evidence (one row per evaluation example), the registry of metrics (each a
numpy function of that evidence with its direction, aggregation and the columns it reads), their
definitions and the bootstrap. Numpy and pandas only: no torch, no other room but `benchmark.util`.

Importing the package registers every metric (`definitions`), so the registry is never seen empty.
"""

from benchmark.metrics import definitions  # noqa: F401
