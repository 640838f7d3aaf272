"""Sequential tasks' metrics (DESIGN §5), from evidence as every other metric. A step's erasure
score is its record's headline (its task's F is every concept forgotten so far, its oracle retrained
without them, its utility taken against the original served with all of them banned). Beside it:

- **per request**: the forgetting part (and its two components) over the forget rows whose target
  a given request forgot, at every later step — **retention** sets request i's value at step j
  beside its value at step i (does a later request revive an earlier concept?);
- **drift**: the utility part at step j over its value after step 1;
- **cumulative cost**: unlearning seconds of steps 1..j against retraining at each of them.

Numpy only: no torch."""

from __future__ import annotations

import numpy as np

from benchmark.metrics.bootstrap import metric_stats
from benchmark.metrics.evidence import Evidence
from benchmark.metrics.stat import MetricStat

REQUEST_METRICS = ("forgetting_part", "served_forgetting", "oracle_match")


def request_rows(ev: Evidence, item_request: np.ndarray, request: int) -> Evidence:
    """The evidence restricted to the retain-test rows and the forget rows (forget-test and forget
    set) whose target request `request` forgot."""
    forget = ev["pool"] != "retain_test"
    keep = ~forget | (item_request[ev["target"]] == request)
    return Evidence({c: v[keep] for c, v in ev.cols.items()})


def request_metrics(
    ev: Evidence, item_request: np.ndarray, step: int, seed: int
) -> dict[str, dict[str, MetricStat]]:
    """{request i (as a string) -> {metric: value with its paired interval}} for requests 1..step,
    over each request's rows (`request_rows`)."""
    out = {}
    for i in range(1, step + 1):
        part = request_rows(ev, item_request, i)
        with np.errstate(all="ignore"):
            out[str(i)] = metric_stats(part, REQUEST_METRICS, seed=seed)
    return out


def drift(utility_at_step: float, utility_after_first: float) -> float:
    """The utility part at a step over its value after step 1 (1: no drift)."""
    if not (np.isfinite(utility_at_step) and np.isfinite(utility_after_first)):
        return float("nan")
    return utility_at_step / utility_after_first if utility_after_first > 0 else float("nan")
