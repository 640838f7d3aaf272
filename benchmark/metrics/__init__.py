"""Metrics: a cell's evidence (one row per evaluation example) and the registry of metrics, each a
numpy function of that evidence with its direction and aggregation. Numpy and pandas only: no
torch, no other room but `benchmark.util`."""
