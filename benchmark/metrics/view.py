"""The view a metric function reads: an evidence frame (`benchmark.metrics.evidence`), optionally a
bootstrap resample of it, with its pools resolved once and its per-example quantities cached.
Numpy only: no torch."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np

from benchmark.metrics.evidence import Evidence
from benchmark.metrics.ranking import bits_share, ndcg_at_k, recall_at_k

T = TypeVar("T")
_RANKERS = {"recall": recall_at_k, "ndcg": ndcg_at_k}
# each pool a metric is computed over: the View attribute holding its rows and the evidence
# columns that choose them (a metric over the pool reads those columns too)
POOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "retain_test": ("rt", ("pool",)),
    "forget_test": ("ft", ("pool",)),
    "forget_set": ("fs", ("pool",)),
    "collateral": ("col", ("pool", "collateral")),
    "retain_test+forget_test": ("test", ("pool",)),
    "latent_sample": ("lat", ("pool", "latent_rank")),
}


def pool_columns(pool: str) -> tuple[str, ...]:
    """The evidence columns that choose a pool's rows (none for "all" or a model-level pool)."""
    return POOLS[pool][1] if pool in POOLS else ()


class View:
    """Evidence (optionally a bootstrap resample `idx` of it) with its pools resolved once, as
    row indices into the full evidence (in the resample's order). Per-example quantities (recall
    of a rank column at K, exposure shares...) are computed once on the full evidence, shared by
    every resample through `cache`, and only indexed by a pool's rows per resample."""

    def __init__(self, ev: Evidence, idx: np.ndarray | None = None, cache: dict | None = None):
        self.ev = ev
        self._shared = cache if cache is not None else {}
        masks = self.per_row("pool masks", lambda: _pool_masks(ev))
        rows = np.arange(len(ev)) if idx is None else idx
        self.rt, self.ft, self.fs, self.col, self.test, self.lat = (rows[m[rows]] for m in masks)

    def pool(self, name: str) -> np.ndarray | None:
        """The rows of a pool of `POOLS`; None for any other ("all": every row)."""
        return getattr(self, POOLS[name][0]) if name in POOLS else None

    def per_row(self, key: Hashable, fn: Callable[[], T]) -> T:
        """fn() over the full evidence, computed once per evidence (cached)."""
        if key not in self._shared:
            self._shared[key] = fn()
        return self._shared[key]

    def get(self, column: str, rows: np.ndarray) -> np.ndarray:
        return self.per_row(column, lambda: self.ev[column])[rows]

    def ranked(self, what: str, column: str, k: int, rows: np.ndarray) -> np.ndarray:
        """Recall@k or NDCG@k (`what`) of a rank column, per example."""
        fn = _RANKERS[what]
        return self.per_row((what, column, k), lambda: fn(self.ev[column], k))[rows]

    def exposure(self, column: str, k: int, rows: np.ndarray) -> np.ndarray:
        return self.per_row(("bits", column, k), lambda: bits_share(self.ev[column], k))[rows]

    def q(self, column: str) -> np.ndarray:
        """Latent percentile of forget-set targets: 0 = top of the catalogue, 1 = bottom (reads
        `column` and n_candidates)."""

        def full() -> np.ndarray:
            return self.ev[column] / np.maximum(self.ev["n_candidates"] - 1, 1)

        return self.per_row(("q", column), full)[self.lat]


def _pool_masks(ev: Evidence) -> tuple[np.ndarray, ...]:
    """Boolean masks over the full evidence: retain-test, forget-test, forget set, collateral,
    every test target, the latent sample (forget-set rows with latent ranks)."""
    pool = ev["pool"]
    rt, ft, fs = pool == "retain_test", pool == "forget_test", pool == "forget_set"
    lat = fs & ~np.isnan(ev["latent_rank"])
    return rt, ft, fs, rt & ev["collateral"], rt | ft, lat
