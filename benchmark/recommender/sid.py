"""Semantic IDs: every item becomes a tuple of discrete codes (c1, ..., cL, d).

(c1..cL) come from residual quantisation of the item's content features by residual k-means (no
gradient training); d separates items whose first L codes collide, so every item has a unique
SID. `SemanticIds` holds the codes, answers the sharing / purity questions TRACER is about, and
saves itself as JSON (+ centroids in a sibling .safetensors file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from benchmark.recommender.device import on_cpu
from benchmark.recommender.options import Withdrawn, config_dict, recorded_config
from benchmark.util.atomic import write_text_atomic, written_atomic
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError
from tasks.untrusted import MAX_BYTES, inside, read_json_object

SID_FORMAT = 1


@dataclass(frozen=True)
class SIDConfig:
    levels: int = 3
    codebook_size: int = 32
    # None: the run's seed draws the tokenizer too (its k-means++ init), so that seeds
    # sample the tokenizer's variance, the largest in the base model's quality
    # (reports/backbone-tuning-cpu.md, section 5); an int fixes one tokenizer for every seed
    seed: int | None = None
    kmeans_iters: int = 50
    # withdrawn: the RQ-VAE tokenizer (method "rqvae"), which no task or committed result used
    WITHDRAWN: ClassVar[tuple[Withdrawn, ...]] = tuple(
        Withdrawn(name, value, "rqvae-tokenizer.diff")
        for name, value in (
            ("method", "rkmeans"), ("rqvae_epochs", 200), ("rqvae_hidden", 128),
            ("rqvae_lr", 1e-3), ("rqvae_latent", 32), ("rqvae_beta", 0.25),
        )
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.levels < 1 or self.codebook_size < 2:
            raise BenchError(
                f"SID config needs levels >= 1 and codebook_size >= 2, got {self.to_dict()}"
            )

    def to_dict(self) -> dict:
        return config_dict(self)

    def for_seed(self, seed: int) -> SIDConfig:
        """This config with its seed resolved for a run with model seed `seed`."""
        return self if self.seed is not None else replace(self, seed=seed)

    def config_hash(self) -> str:
        blob = json.dumps({"format": SID_FORMAT, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


# ---- k-means -------------------------------------------------------------------------------------


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    chosen = [int(rng.integers(n))]
    d2 = _sq_dist(x, x[chosen])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: any point will do
            idx = int(rng.integers(n))
        else:
            idx = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
            idx = min(idx, n - 1)
        chosen.append(idx)
        d2 = np.minimum(d2, _sq_dist(x, x[idx : idx + 1])[:, 0])
    return x[chosen].copy()


def _assign(x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = _sq_dist(x, c)
    labels = d.argmin(1)  # ties go to the lowest index
    return labels, d[np.arange(len(x)), labels]


def _update(x: np.ndarray, labels: np.ndarray, dist: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    c = sums / np.maximum(counts, 1)[:, None]
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        # an empty cluster restarts at the worst-served point (farthest first, ties by index)
        far = np.argsort(-dist, kind="stable")[: len(empty)]
        c[empty] = x[far]
    return c


def kmeans(
    x: np.ndarray, k: int, rng: np.random.Generator, iters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ init: (centroids (k', d), labels (n,)), k' = min(k, n)."""
    k = min(k, len(x))
    c = _kmeans_pp(x, k, rng)
    labels, dist = _assign(x, c)
    for _ in range(iters):
        c = _update(x, labels, dist, k)
        new, dist = _assign(x, c)
        if np.array_equal(new, labels):
            break
        labels = new
    return c, labels


def residual_kmeans(
    x: np.ndarray, levels: int, k: int, seed: int, iters: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes (n, levels) and per-level centroids of residual k-means on the rows of `x`."""
    rng = np.random.default_rng(seed)
    residual = np.array(x, dtype=np.float64)
    codes, centroids = [], []
    for _ in range(levels):
        c, labels = kmeans(residual, k, rng, iters)
        residual -= c[labels]
        codes.append(labels)
        centroids.append(c)
    return np.stack(codes, axis=1).astype(np.int64), centroids


# ---- semantic IDs --------------------------------------------------------------------------------


def dedup_codes(prefix: np.ndarray) -> np.ndarray:
    """Last code d: items sharing a prefix row get 0, 1, 2, ... in item-index order."""
    _, group = np.unique(prefix, axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    d = np.empty(len(prefix), dtype=np.int64)
    d[order] = np.arange(len(prefix)) - starts
    return d


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True, eq=False)
class SemanticIds:
    """Item i's SID is codes[i] (n_levels codes); level j's codes lie in [0, sizes[j])."""

    codes: np.ndarray  # (n_items, n_levels) int64, read-only
    sizes: tuple[int, ...]
    config: SIDConfig | None = None
    centroids: tuple[np.ndarray, ...] = ()  # per quantised level, from fitting; () once edited

    def __post_init__(self) -> None:
        codes = np.array(self.codes, dtype=np.int64)
        codes.flags.writeable = False  # sid_to_item is cached: codes must never change
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        object.__setattr__(self, "centroids", tuple(np.asarray(c) for c in self.centroids))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemanticIds):
            return NotImplemented
        return (
            np.array_equal(self.codes, other.codes)
            and self.sizes == other.sizes
            and self.config == other.config
            and len(self.centroids) == len(other.centroids)
            and all(
                np.array_equal(a, b) for a, b in zip(self.centroids, other.centroids, strict=True)
            )
        )

    __hash__ = None  # mutable-looking content: not hashable

    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    @property
    def n_levels(self) -> int:
        return self.codes.shape[1]

    def item_to_sid(self, item: int) -> tuple[int, ...]:
        return tuple(int(c) for c in self.codes[item])

    @cached_property
    def sid_to_item(self) -> dict[tuple[int, ...], int]:
        return {tuple(row): i for i, row in enumerate(self.codes.tolist())}

    def validate(self) -> None:
        """Raise BenchError unless codes are (n_items, len(sizes)), in range and unique."""
        c = self.codes
        if c.ndim != 2 or c.shape[1] != len(self.sizes) or c.shape[0] == 0:
            raise BenchError(f"SID codes of shape {c.shape} do not match sizes {self.sizes}")
        if c.min() < 0 or (c >= np.array(self.sizes)).any():
            level = int(np.flatnonzero(((c < 0) | (c >= np.array(self.sizes))).any(0))[0])
            raise BenchError(
                f"SID codes at level {level} leave [0, {self.sizes[level]}): "
                f"range [{c[:, level].min()}, {c[:, level].max()}]"
            )
        _, first, inverse = np.unique(c, axis=0, return_index=True, return_inverse=True)
        if len(first) != len(c):
            dup = int(np.flatnonzero(first[inverse.reshape(-1)] != np.arange(len(c)))[0])
            raise BenchError(
                f"SIDs are not unique: item {dup} has the SID {self.item_to_sid(dup)} of item "
                f"{int(first[inverse.reshape(-1)[dup]])}"
            )

    def with_codes(self, new_codes: np.ndarray, new_sizes: tuple[int, ...]) -> SemanticIds:
        """A validated copy with other codes (e.g. fresh level-1 tokens); centroids dropped."""
        sid = SemanticIds(new_codes, tuple(new_sizes), self.config)
        sid.validate()
        return sid

    # ---- diagnostics ----

    def collision_rate(self) -> float:
        """Share of items whose (c1..cL) prefix, without d, is shared with another item."""
        _, inverse, counts = np.unique(
            self.codes[:, :-1], axis=0, return_inverse=True, return_counts=True
        )
        return float((counts[inverse.reshape(-1)] > 1).mean())

    def level1_sharing(self, forget_mask: np.ndarray) -> dict:
        """How forget items share level-1 codes with retain items.

        forget_codes: level-1 codes used by forget items; shared_codes: how many of them retain
        items use too; forget_item_share: share of forget items on a shared code (what TRACER
        removes); retain_codes / retain_item_share: the same seen from the retain side (the
        retain items that suppressing shared tokens would hurt).
        """
        forget = np.asarray(forget_mask, dtype=bool)
        if forget.shape != (self.n_items,):
            raise BenchError(f"forget mask of shape {forget.shape} for {self.n_items} items")
        c1 = self.codes[:, 0]
        f_codes, r_codes = np.unique(c1[forget]), np.unique(c1[~forget])
        shared = np.intersect1d(f_codes, r_codes)
        return {
            "forget_codes": len(f_codes),
            "shared_codes": len(shared),
            "forget_item_share": float(np.isin(c1[forget], shared).mean()) if forget.any() else 0.0,
            "retain_codes": len(r_codes),
            "retain_item_share": float(np.isin(c1[~forget], shared).mean())
            if (~forget).any()
            else 0.0,
        }

    def code_purity(
        self, features: np.ndarray, level: int = 0, mask: np.ndarray | None = None
    ) -> float:
        """Mean cosine similarity of item pairs sharing their SID prefix up to `level` (level 0:
        the level-1 code) minus the mean over all pairs; items restricted to `mask` if given.
        NaN when no pair shares a prefix."""
        items = np.flatnonzero(mask) if mask is not None else np.arange(self.n_items)
        x = _l2_normalize(np.asarray(features, dtype=np.float64)[items])
        n = len(items)
        if n < 2:
            return float("nan")
        # sum over ordered pairs i != j of <x_i, x_j> = |sum x|^2 - sum |x_i|^2, per group likewise
        self_sq = float((x * x).sum())
        total = x.sum(0)
        mean_all = (total @ total - self_sq) / (n * (n - 1))
        _, group = np.unique(self.codes[items, : level + 1], axis=0, return_inverse=True)
        group = group.reshape(-1)
        sums = np.zeros((group.max() + 1, x.shape[1]))
        np.add.at(sums, group, x)
        counts = np.bincount(group)
        pairs = float((counts * (counts - 1)).sum())
        if pairs == 0:
            return float("nan")
        return float(((sums * sums).sum() - self_sq) / pairs - mean_all)

    # ---- persistence ----

    def save(self, path: str | Path) -> None:
        """JSON at `path`; centroids, if any, in `path` with suffix .safetensors beside it."""
        from safetensors.numpy import save_file

        path = Path(path)
        doc = {
            "format": SID_FORMAT,
            "sizes": list(self.sizes),
            "config": self.config.to_dict() if self.config else None,
            "centroids": None,
            "codes": self.codes.tolist(),
        }
        if self.centroids:
            cpath = path.with_suffix(".safetensors")
            arrays = {f"level{j}": np.ascontiguousarray(c) for j, c in enumerate(self.centroids)}
            with written_atomic(cpath) as tmp:
                save_file(arrays, str(tmp))
            doc["centroids"] = {"file": cpath.name, "sha256": file_digest(cpath)}
        write_text_atomic(path, json.dumps(doc))

    @classmethod
    def load(
        cls,
        path: str | Path,
        max_sizes: tuple[int, ...] | None = None,
        n_items: int | None = None,
        centroids: bool = True,
    ) -> SemanticIds:
        """A table saved by `save`, every field checked before any array is built: `max_sizes`
        (when given) each level's largest codebook, hence the number of levels; `n_items` the
        number of rows; centroids=False refuses a table that names a centroid file. The centroid
        file must lie in the table's folder. A one-line BenchError naming the file otherwise."""
        path = Path(path)
        doc = read_json_object(path, max_bytes=_max_table_bytes(max_sizes, n_items))
        known = {"format", "sizes", "config", "centroids", "codes"}
        if set(doc) - known:
            raise BenchError(f"{path}: unknown field {sorted(set(doc) - known)[0][:40]!r}")
        if known - set(doc):
            raise BenchError(f"{path}: missing field {sorted(known - set(doc))[0]!r}")
        if doc["format"] != SID_FORMAT or type(doc["format"]) is not int:
            raise BenchError(f"{path}: SID format {_short(doc['format'])}, expected {SID_FORMAT}")
        sizes = _checked_sizes(doc["sizes"], max_sizes, path)
        codes = _checked_codes(doc["codes"], sizes, n_items, path)
        config = None
        if doc["config"] is not None:
            config = recorded_config(SIDConfig, doc["config"], f"{path}: config")
        arrays: tuple[np.ndarray, ...] = ()
        if doc["centroids"] is not None:
            if not centroids:
                raise BenchError(f"{path}: names a centroid file (refused: a served SID table "
                                 "carries no centroids)")  # fmt: skip
            arrays = _load_centroids(path, doc["centroids"])
        sid = cls(codes, sizes, config, arrays)
        try:
            sid.validate()
        except BenchError as exc:
            raise BenchError(f"{path}: invalid SID table ({exc})") from None
        return sid


MAX_CODES = 2**31  # per level, when the caller sets no limit
_JSON_INT_BYTES = 24  # a code, its separator and a little room, in a table's JSON


def _max_table_bytes(max_sizes: tuple[int, ...] | None, n_items: int | None) -> int:
    """The largest JSON a table of these dimensions needs (the reader's default otherwise)."""
    if max_sizes is None or n_items is None:
        return MAX_BYTES
    return 2**16 + n_items * (len(max_sizes) + 2) * _JSON_INT_BYTES


def _checked_sizes(value: object, max_sizes: tuple[int, ...] | None, path: Path) -> tuple:
    if not isinstance(value, list) or not value or not all(type(s) is int for s in value):
        raise BenchError(f"{path}: 'sizes' must be a non-empty list of integers")
    if max_sizes is not None:
        if len(value) != len(max_sizes):
            raise BenchError(f"{path}: {len(value)} SID levels, expected {len(max_sizes)}")
        for level, (size, most) in enumerate(zip(value, max_sizes, strict=True)):
            if not 1 <= size <= most:
                raise BenchError(f"{path}: level {level} has {size} codes, at most {most} "
                                 "allowed")  # fmt: skip
    elif not all(1 <= s <= MAX_CODES for s in value):
        raise BenchError(f"{path}: 'sizes' must lie in [1, {MAX_CODES}], got {_short(value)}")
    return tuple(value)


def _checked_codes(
    value: object, sizes: tuple[int, ...], n_items: int | None, path: Path
) -> np.ndarray:
    """(n_items, levels) int64 codes, each in [0, size of its level), checked as JSON first."""
    levels = len(sizes)
    if not isinstance(value, list) or not value:
        raise BenchError(f"{path}: 'codes' must be a non-empty list of rows")
    if n_items is not None and len(value) != n_items:
        raise BenchError(f"{path}: {len(value)} items, the task has {n_items}")
    for item, row in enumerate(value):
        if not isinstance(row, list) or len(row) != levels:
            raise BenchError(f"{path}: codes of item {item} must be a list of {levels} integers")
        for code, size in zip(row, sizes, strict=True):
            if type(code) is not int or not 0 <= code < size:
                raise BenchError(f"{path}: codes of item {item} must be integers in "
                                 f"[0, {list(sizes)}), got {_short(row)}")  # fmt: skip
    return np.array(value, dtype=np.int64)


def _load_centroids(path: Path, ref: object) -> tuple[np.ndarray, ...]:
    """The centroid file a table names, inside the table's folder and with its recorded hash."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not isinstance(ref, dict) or set(ref) != {"file", "sha256"}:
        raise BenchError(f"{path}: 'centroids' must be an object with 'file' and 'sha256'")
    cpath = inside(path.parent, ref["file"], f"{path}: centroids")
    if not cpath.is_file() or file_digest(cpath) != ref["sha256"]:
        raise BenchError(f"{cpath}: centroids missing or not the ones saved with {path}")
    try:
        arrays = load_file(cpath)
        return tuple(arrays[f"level{j}"] for j in range(len(arrays)))
    except (SafetensorError, KeyError) as exc:
        raise BenchError(f"{cpath}: not the centroids saved with {path} ({exc})") from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@on_cpu
def fit_semantic_ids(features: np.ndarray, config: SIDConfig | None = None) -> SemanticIds:
    """Quantise item features (n_items, d) into unique semantic IDs (n_items, levels + 1)."""
    config = (config or SIDConfig()).for_seed(0)  # a fit outside a seeded run draws with seed 0
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0 or not np.isfinite(x).all():
        raise BenchError(f"SID features must be a finite (n_items, d) array, got shape {x.shape}")
    prefix, centroids = residual_kmeans(
        x, config.levels, config.codebook_size, config.seed, config.kmeans_iters
    )
    d = dedup_codes(prefix)
    sizes = (config.codebook_size,) * config.levels + (int(d.max()) + 1,)
    sid = SemanticIds(np.column_stack([prefix, d]), sizes, config, tuple(centroids))
    sid.validate()
    return sid
