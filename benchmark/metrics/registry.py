"""The metric registry (DESIGN §5), in the manner of lm-evaluation-harness's `register_metric`:
each metric is registered once with its direction, aggregation, pool, K and the evidence columns
it reads; everything else looks it up here. The definitions live in
`benchmark.metrics.definitions` (loaded with the `benchmark.metrics` package), the bootstrap in
`benchmark.metrics.bootstrap`. A metric name is parsed here and nowhere else. Numpy only: no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from benchmark.metrics.evidence import COLUMNS, EXAMPLE_COLUMNS, METHOD_COLUMNS, Evidence
from benchmark.metrics.view import View, pool_columns

HEADLINE = "erasure_score"
HEADLINE_K = 10  # the headline's served forgetting and utility are taken at @10
# the measurements that measure the machine (time, memory), not the model: they differ between
# runs of the same cell, so equality checks of two runs leave them out
COST_METRICS = ("unlearn_seconds", "peak_memory_mib", "speedup_over_retrain")
# what a one-line summary of a cell shows (the Hub card's table, `compare`'s default): the
# headline, its parts and the metrics that explain them
SUMMARY_METRICS = (
    HEADLINE, "forgetting_part", "utility_part", "served_forgetting", "oracle_match",
    "retained_ndcg_banned_ratio@10", "ce_excess@10", "relearn_excess@10",
)  # fmt: skip
# evidence of the original model that no registered metric reads yet: one original model per task
# and seed all the same, so it is shared by every method's evidence
UNREAD_REFERENCE = ("original_forget_bits",)


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    aggregation: str  # how examples become the value: mean, ratio of means, formula, model
    description: str
    pool: str  # the examples it is computed over ("" for model-level measurements)
    per_k: bool = False  # the name takes "@K"
    fn: Callable | None = None  # fn(view, k) -> float; None: not computable from evidence
    columns: tuple[str, ...] = ()  # the evidence columns it reads, its pool's included


METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    *,
    higher_is_better: bool,
    aggregation: str,
    description: str,
    pool: str = "",
    per_k: bool = False,
    columns: Iterable[str] = (),
) -> Callable:
    """Register fn(view, k) as `name`, reading `columns` over `pool` (whose columns are added)."""
    reads = tuple(dict.fromkeys((*pool_columns(pool), *columns)))
    unknown = [c for c in reads if c not in COLUMNS]
    if unknown:
        raise ValueError(f"metric {name!r} reads columns {unknown} that evidence does not have")

    def deco(fn: Callable | None) -> Callable | None:
        METRICS[name] = Metric(
            name, higher_is_better, aggregation, description, pool, per_k, fn, reads
        )
        return fn

    return deco


def register_measurement(name: str, higher_is_better: bool, description: str) -> None:
    """A model-level measurement (geometry, cost): recorded in the result, not in the evidence."""
    register_metric(
        name, higher_is_better=higher_is_better, aggregation="model", description=description
    )(None)


def reads(*names: str) -> tuple[str, ...]:
    """The evidence columns the registered metrics `names` read together."""
    return tuple(dict.fromkeys(c for n in names for c in METRICS[n].columns))


def parse_metric(name: str) -> tuple[str, int | None]:
    """The one parse of a metric name: `ce_excess@10` -> ("ce_excess", 10), `oracle_match` ->
    ("oracle_match", None); a K that is not a positive integer written plainly -> (name, None)
    with the base being everything before "@" (so such a name is never a known per-K metric)."""
    base, at, k = name.partition("@")
    if not at:
        return base, None
    return base, (int(k) if k.isdigit() and str(int(k)) == k and int(k) > 0 else None)


def metric_base(name: str) -> str:
    return parse_metric(name)[0]


def metric_k(name: str) -> int | None:
    return parse_metric(name)[1]


def higher_is_better(name: str) -> bool:
    return METRICS[metric_base(name)].higher_is_better


def reference_columns() -> tuple[str, ...]:
    """The evidence columns that describe the examples, the original model (its tokenizer's
    collateral flag included) and the oracle, not the method: every column a registered metric
    reads that the method does not write (`METHOD_COLUMNS`), the examples' identity
    (`EXAMPLE_COLUMNS`) and `UNREAD_REFERENCE`. One original model and one oracle per (task,
    seed): every method's evidence of that seed holds the same ones. In evidence column order."""
    read = {c for m in METRICS.values() for c in m.columns} | set(UNREAD_REFERENCE)
    drop = {*METHOD_COLUMNS, *EXAMPLE_COLUMNS}
    return (*EXAMPLE_COLUMNS, *(c for c in COLUMNS if c in read and c not in drop))


def evidence_metric_names(ks: Iterable[int]) -> list[str]:
    """Every metric computable from evidence, '@K' expanded over `ks`."""
    ks = sorted(set(int(k) for k in ks))
    out = []
    for m in METRICS.values():
        if m.fn is None:
            continue
        out.extend([f"{m.name}@{k}" for k in ks] if m.per_k else [m.name])
    return out


def _split(name: str) -> tuple[Callable, int | None]:
    """A metric name's evidence function fn(view, k) and its K."""
    base, k = parse_metric(name)
    fn = METRICS[base].fn if base in METRICS else None
    if fn is None or (k is None) == METRICS[base].per_k:
        raise KeyError(f"metric {name!r} is not computable from evidence")
    return fn, k


def compute(ev: Evidence | View, name: str) -> float:
    fn, k = _split(name)
    return float(fn(ev if isinstance(ev, View) else View(ev), k))


def compute_all(ev: Evidence, names: Sequence[str]) -> dict[str, float]:
    v = View(ev)
    return {n: compute(v, n) for n in names}


def pool_size(v: View, name: str) -> int:
    """How many examples a metric's value is computed over in `v`."""
    rows = v.pool(METRICS[metric_base(name)].pool)
    return len(v.ev) if rows is None else len(rows)
