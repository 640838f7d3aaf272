"""A cell's evidence (DESIGN §5, §6): one row per evaluation example, from which every metric is a
pure numpy function (`benchmark.metrics.definitions`). Numpy and pandas only: no torch.

Columns (ranks are 0-based; inf when the target is not in the served top-K list; NaN where a
column does not apply to the row's pool):

- pool: "retain_test" | "forget_test" | "forget_set"; collateral (bool): a retain-test target
  whose item shares its level-1 code with a forget item; position (absolute, into the task's
  sequences); target (item id).
- topk (list of item ids, -1 = empty), rank: the method's served list (with its decode-time ban).
- forget_bits, original_forget_bits, oracle_forget_bits: bit j set when slot j of the method's /
  original model's / oracle's served list holds a forget item (concept exposure, CE@K).
- original_rank, oracle_rank: the original model's and the oracle's served ranks.
- banned_rank: the original model's served rank with the forget items banned at decode (what
  `filter` serves; the utility part's reference, protocol 2.1); inf on forget targets.
- n_candidates: items the target is ranked among (the catalogue minus the user's seen items).
- latent_rank, original_latent_rank, oracle_latent_rank (forget-set rows of the latent sample):
  teacher-forced rank among every item, no bans (method and original: the better of original
  and served SID); NaN on forget-set rows outside the sample.
- relearn_rank, oracle_relearn_rank (forget-set rows): served rank after the relearning fine-tune.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.util.atomic import write_bytes_atomic

POOLS = ("retain_test", "forget_test", "forget_set")
RANKS = (
    "rank", "original_rank", "oracle_rank", "banned_rank", "latent_rank", "original_latent_rank",
    "oracle_latent_rank", "relearn_rank", "oracle_relearn_rank",
)  # fmt: skip
BITS = ("forget_bits", "original_forget_bits", "oracle_forget_bits")
ORACLE_COLUMNS = ("oracle_rank", "oracle_forget_bits", "oracle_latent_rank", "oracle_relearn_rank")
# the method's own evidence (its served list, ranks and exposure); every other column describes
# the example, the original model or the oracle
METHOD_COLUMNS = ("topk", "rank", "forget_bits", "latent_rank", "relearn_rank")
# which example a row is: the same in every model's evidence of a task and seed
EXAMPLE_COLUMNS = ("pool", "position", "target", "n_candidates")
COLUMNS = ("pool", "collateral", "position", "target", "topk", *RANKS, *BITS, "n_candidates")
FORGET_SET_ONLY = RANKS[4:]  # latent and relearn ranks exist on forget-set rows only


def evidence_path(result_json: Path) -> Path:
    return result_json.with_name(result_json.name.removesuffix(".json") + ".evidence.parquet")


def slot_bits(in_forget: np.ndarray) -> np.ndarray:
    """(N, K) bool slots -> (N,) int64 bit masks (bit j = slot j)."""
    k = in_forget.shape[1]
    return (in_forget.astype(np.int64) << np.arange(k, dtype=np.int64)).sum(1)


def forget_slots(topk: np.ndarray, forget_mask: np.ndarray) -> np.ndarray:
    """Which slots of top-K lists (item ids, -1 = empty) hold a forget item."""
    return forget_mask[np.maximum(topk, 0)] & (topk >= 0)


def latent_rows(n_forget_set: int, sample: int, seed: int) -> np.ndarray:
    """The latent sample: `sample` forget-set rows drawn (sorted) with the task's split seed."""
    if sample >= n_forget_set:
        return np.arange(n_forget_set)
    return np.sort(np.random.default_rng(seed).choice(n_forget_set, sample, replace=False))


def target_ranks(topk: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its row of `topk` (N, K); inf where absent."""
    hit = topk == targets[:, None]
    return np.where(hit.any(1), hit.argmax(1), np.inf)


@dataclass(frozen=True)
class Evidence:
    """Evidence columns as numpy arrays (the fast form metrics and bootstraps work on)."""

    cols: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Evidence:
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"evidence is missing columns {missing}")
        cols = {c: df[c].to_numpy() for c in COLUMNS if c != "topk"}
        cols["pool"] = cols["pool"].astype(str)
        cols["collateral"] = cols["collateral"].astype(bool)
        for c in (*RANKS,):
            cols[c] = cols[c].astype(np.float64)
        for c in (*BITS, "position", "target", "n_candidates"):
            cols[c] = cols[c].astype(np.int64)
        return cls(cols)

    def __len__(self) -> int:
        return len(self.cols["pool"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def mask(self, pool: str) -> np.ndarray:
        return self.cols["pool"] == pool

    def with_columns(self, **new: np.ndarray) -> Evidence:
        return Evidence({**self.cols, **new})

    def pool_rows(self) -> list[np.ndarray]:
        """Row indices of each non-empty stratum of a bootstrap: each pool, the forget set split
        into the rows with latent ranks (the latent sample) and those without."""
        lat = ~np.isnan(self.cols["latent_rank"])
        strata = [self.mask("retain_test"), self.mask("forget_test"),
                  self.mask("forget_set") & lat, self.mask("forget_set") & ~lat]  # fmt: skip
        return [r for m in strata if len(r := np.flatnonzero(m))]


def resample_indices(strata: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap resample: rows drawn with replacement within each pool, so every
    pool keeps its size. Two models' evidence on the same examples take the same indices
    (a paired bootstrap)."""
    return np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata])


def same_examples(a: Evidence, b: Evidence) -> bool:
    """Whether two evidence frames hold the same examples in the same order (pairable)."""
    return len(a) == len(b) and all(
        np.array_equal(a[c], b[c]) for c in ("pool", "position", "target")
    )


def with_oracle_of(ev: Evidence, other: Evidence) -> Evidence:
    """`ev` scored against the oracle recorded in `other` (another seed's cell of the same task):
    the retrain row's noise ceiling. Both must hold the same examples in the same order."""
    if not same_examples(ev, other):
        raise ValueError("the two evidence frames do not hold the same examples")
    return ev.with_columns(**{c: other[c] for c in ORACLE_COLUMNS})


def read_evidence(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


EVIDENCE_ZSTD_LEVEL = 19


def evidence_bytes(frame: pd.DataFrame) -> bytes:
    """The evidence parquet file's bytes (zstd at level 19; the options measured:
    reports/evidence-size-cpu.md)."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, compression="zstd", compression_level=EVIDENCE_ZSTD_LEVEL)
    return buf.getvalue()


def write_evidence_atomic(path: Path, frame: pd.DataFrame) -> None:
    write_bytes_atomic(path, evidence_bytes(frame))
