"""A metric's statistic as a cell measures it and a result file records it. No numpy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricStat:
    """A metric's value on the cell's evidence, its paired bootstrap interval (NaN: none, as for a
    measured cost or a model-level measurement) and the examples it averages over."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    @classmethod
    def single(cls, value: float, n: int = 1) -> MetricStat:
        """A value with no interval."""
        nan = float("nan")
        return cls(value, nan, nan, n)
