"""A metric's statistic as a cell measures it and a result file records it. No numpy."""

from __future__ import annotations

import math
from dataclasses import dataclass

# a recorded value agrees with its recomputation from evidence within this (relative and absolute)
EVIDENCE_TOL = 1e-9


def agrees(recorded: float, recomputed: float) -> bool:
    """A recorded value against its recomputation: equal within EVIDENCE_TOL, or both NaN."""
    if math.isnan(recorded) or math.isnan(recomputed):
        return math.isnan(recorded) and math.isnan(recomputed)
    return math.isclose(recorded, recomputed, rel_tol=EVIDENCE_TOL, abs_tol=EVIDENCE_TOL)


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
