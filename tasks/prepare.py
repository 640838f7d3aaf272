"""Turn a task spec into prepared, split, hashed and cached data.

Per user, interactions are ordered by (timestamp, item id) and split chronologically (DESIGN §3):
under protocol 2.0 ("last-n") the last n_test items are test targets, each predicted from
everything before it, the one before them the validation target, the rest train; under
"leave-one-out" (protocol 1.x) the last item is the test target and the second-last the
validation target. Forget-test targets are test items in F; retain-test targets the others.
D_f holds the training examples (history -> target) whose target is in F, D_r the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.util.atomic import folder_atomic
from tasks.concepts import CLOSE, NODE_SEP, closest_labels, concept_mask, label_counts
from tasks.dataset import RawDataset
from tasks.errors import BenchError
from tasks.sources import SOURCES
from tasks.sources.common import cache_path, verify_checksum
from tasks.spec import MIN_TRAIN, TaskSpec

FORMAT_VERSION = 1
LABEL_SEP = "\t"  # joins an item's concept labels in the cache (labels never contain tabs)
ARRAYS = (
    "user_ids", "item_ids", "item_titles", "item_years", "item_texts", "item_concepts",
    "forget_mask", "seq_offsets", "seq_items", "seq_times",
)  # fmt: skip


def _log(msg: str) -> None:
    print(f"[tracer-bench] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True, eq=False)
class PreparedTask:
    """A task's prepared data. Items and users are dense indices into `item_ids` / `user_ids`."""

    spec: TaskSpec
    user_ids: np.ndarray  # original user id per user index
    item_ids: np.ndarray  # original item id per item index
    item_titles: np.ndarray
    item_years: np.ndarray
    item_texts: np.ndarray
    item_concepts: np.ndarray  # labels joined by LABEL_SEP
    forget_mask: np.ndarray  # bool per item: item is in F
    seq_offsets: np.ndarray  # user u's chronological items are seq_items[off[u]:off[u+1]]
    seq_items: np.ndarray
    seq_times: np.ndarray
    raw_stats: dict  # counts before preprocessing
    content_hash: str
    # bool per item: forgotten by an earlier request of a sequence (`tasks.sequence`), so in
    # neither F nor R; None: no earlier request
    forgotten_mask: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.seq_items)

    def sequence(self, user: int) -> np.ndarray:
        return self.seq_items[self.seq_offsets[user] : self.seq_offsets[user + 1]]

    def item_labels(self, item: int) -> tuple[str, ...]:
        s = str(self.item_concepts[item])
        return tuple(s.split(LABEL_SEP)) if s else ()

    @cached_property
    def base_hash(self) -> str:
        """Hash of what the base model depends on (`base_hash`): the same for every concept on
        the same data, preprocessing and split."""
        return base_hash(self.spec, {n: getattr(self, n) for n in BASE_ARRAYS}, self.raw_stats)

    @cached_property
    def oracle_hash(self) -> str:
        """Hash of what the retrain oracle depends on: the base model's data and which items are
        in F (and which are forgotten, if any). Not the task's name or forget-set sample: a
        sequence's step whose forget items are a single-concept task's shares that task's
        oracle."""
        h = hashlib.sha256(f"tracer-bench-oracle/{FORMAT_VERSION}/{self.base_hash}".encode())
        h.update(np.packbits(np.asarray(self.forget_mask, dtype=bool)).tobytes())
        if self.forgotten_mask is not None:  # its R differs too
            h.update(np.packbits(np.asarray(self.forgotten_mask, dtype=bool)).tobytes())
        return h.hexdigest()

    # --- items ---
    @cached_property
    def forget_items(self) -> np.ndarray:
        return np.flatnonzero(self.forget_mask)

    @cached_property
    def retain_mask(self) -> np.ndarray:
        """bool per item: the item is in R (neither in F nor forgotten by an earlier request)."""
        if self.forgotten_mask is None:
            return ~self.forget_mask
        return ~self.forget_mask & ~self.forgotten_mask

    @cached_property
    def retain_items(self) -> np.ndarray:
        return np.flatnonzero(self.retain_mask)

    # --- evaluation targets (absolute positions into seq_items) ---
    @cached_property
    def n_test_per_user(self) -> np.ndarray:
        """Test targets per user: 1 under leave-one-out; under last-n, n_test, fewer for short
        histories so that at least MIN_TRAIN interactions remain for training (never below 1)."""
        lengths = np.diff(self.seq_offsets)
        if self.spec.split.protocol == "leave-one-out":
            return np.ones(self.n_users, dtype=np.int64)
        return np.clip(lengths - 1 - MIN_TRAIN, 1, self.spec.split.n_test).astype(np.int64)

    @cached_property
    def valid_pos(self) -> np.ndarray:
        """Each user's validation target: the interaction just before the test targets. It also
        ends the training part (training targets lie strictly before it)."""
        return self.seq_offsets[1:] - self.n_test_per_user - 1

    @cached_property
    def test_pos(self) -> np.ndarray:
        """Every test target (sorted): each user's last n_test_per_user positions. A test target
        is predicted from everything before it, earlier test targets included."""
        n = self.n_test_per_user
        return _ranges(self.valid_pos + 1, n)

    @cached_property
    def test_user(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_users), self.n_test_per_user)

    @property
    def test_items(self) -> np.ndarray:
        return self.seq_items[self.test_pos]

    @property
    def valid_items(self) -> np.ndarray:
        return self.seq_items[self.valid_pos]

    @cached_property
    def forget_test(self) -> np.ndarray:
        """Indices into test_pos of the forget-test targets (test item in F)."""
        return np.flatnonzero(self.forget_mask[self.test_items])

    @cached_property
    def retain_test(self) -> np.ndarray:
        return np.flatnonzero(self.retain_mask[self.test_items])

    @cached_property
    def forget_valid_users(self) -> np.ndarray:
        return np.flatnonzero(self.forget_mask[self.valid_items])

    @cached_property
    def retain_valid_users(self) -> np.ndarray:
        return np.flatnonzero(self.retain_mask[self.valid_items])

    # --- training examples: target position p (absolute) with history seq[start(u):p] ---
    @cached_property
    def train_pos(self) -> np.ndarray:
        """Targets of training examples: every training item except each user's first."""
        n = np.maximum(self.valid_pos - self.seq_offsets[:-1] - 1, 0)
        return _ranges(self.seq_offsets[:-1] + 1, n)

    @cached_property
    def train_user(self) -> np.ndarray:
        return np.searchsorted(self.seq_offsets, self.train_pos, side="right") - 1

    @cached_property
    def d_forget(self) -> np.ndarray:
        """Indices into train_pos of D_f (targets in F)."""
        return np.flatnonzero(self.forget_mask[self.seq_items[self.train_pos]])

    @cached_property
    def d_retain(self) -> np.ndarray:
        """Indices into train_pos of D_r (targets in R)."""
        return np.flatnonzero(self.retain_mask[self.seq_items[self.train_pos]])

    @cached_property
    def forget_set(self) -> np.ndarray:
        """The forget-set evaluation pool: a seeded sample (sorted) of at most N examples of D_f."""
        n = min(self.spec.split.forget_set_size, len(self.d_forget))
        rng = np.random.default_rng(self.spec.split.seed)
        return np.sort(rng.choice(self.d_forget, size=n, replace=False))

    def n_candidates(self, positions: np.ndarray) -> np.ndarray:
        """Items a target at each position is ranked among: the catalogue minus the user's seen
        items (each item appears once per user)."""
        users = np.searchsorted(self.seq_offsets, positions, side="right") - 1
        return (self.n_items - (positions - self.seq_offsets[users])).astype(np.int64)

    def history(self, pos: int) -> np.ndarray:
        """The (at most max_history) items before absolute position `pos` in its user's sequence."""
        user = int(np.searchsorted(self.seq_offsets, pos, side="right") - 1)
        start = max(int(self.seq_offsets[user]), pos - self.spec.preprocess.max_history)
        return self.seq_items[start:pos]

    def summary(self) -> dict:
        return {
            "task": self.spec.identity,
            "source": self.spec.dataset.source,
            "concept": self.spec.concept.label,
            "raw_users": self.raw_stats["users"],
            "raw_items": self.raw_stats["items"],
            "raw_interactions": self.raw_stats["interactions"],
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "forget_items": int(self.forget_mask.sum()),
            "retain_items": int((~self.forget_mask).sum()),
            "protocol": self.spec.split.protocol,
            "test_targets": len(self.test_pos),
            "forget_test_targets": len(self.forget_test),
            "retain_test_targets": len(self.retain_test),
            "forget_test_users": len(np.unique(self.test_user[self.forget_test])),
            "forget_valid_users": len(self.forget_valid_users),
            "retain_valid_users": len(self.retain_valid_users),
            "train_examples_forget": len(self.d_forget),
            "train_examples_retain": len(self.d_retain),
            "forget_set": len(self.forget_set),
            "content_hash": self.content_hash,
            "base_hash": self.base_hash,
        }


@dataclass(frozen=True, eq=False)
class MethodTaskView(PreparedTask):
    """What an unlearning method may see (DESIGN §6): the task without its test targets. Each
    user's sequence ends at its validation target, and the arrays are read-only. Positions are the
    view's own (not the full task's), consistently for every derived index."""

    @cached_property
    def n_test_per_user(self) -> np.ndarray:
        return np.zeros(self.n_users, dtype=np.int64)


def method_view(task: PreparedTask) -> MethodTaskView:
    """The task as a method sees it: test targets removed, arrays read-only, same identity."""
    keep = task.valid_pos - task.seq_offsets[:-1] + 1  # up to and including validation
    idx = _ranges(task.seq_offsets[:-1], keep)
    arrays = {name: np.array(getattr(task, name)) for name in ARRAYS}
    arrays["seq_items"], arrays["seq_times"] = task.seq_items[idx], task.seq_times[idx]
    arrays["seq_offsets"] = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
    for a in arrays.values():
        a.flags.writeable = False
    forgotten = None if task.forgotten_mask is None else np.array(task.forgotten_mask)
    if forgotten is not None:
        forgotten.flags.writeable = False
    view = MethodTaskView(
        spec=task.spec, raw_stats=dict(task.raw_stats), content_hash=task.content_hash,
        forgotten_mask=forgotten, **arrays,
    )  # fmt: skip
    # the view is the task seen by a method: it names the task's base model and features, not
    # a hash of its own truncated sequences
    view.__dict__["base_hash"] = task.base_hash
    return view


def selection_view(task: PreparedTask) -> PreparedTask:
    """The task one split earlier, for choosing the backbone's recipe without its test targets:
    each user's sequence ends at its validation target, and the task's own protocol splits that
    again (under last-n: the last n_test items, the validation target among them, become this
    view's test targets, the one before them its validation target). Its test targets mirror the
    real ones (several per user, late in each history, so less popular than the single validation
    target) while every one of them is an interaction the real protocol lets a method see.
    A distinct name and content hash, so nothing trained on it is mistaken for the task's own."""
    seen = method_view(task)
    arrays = {name: np.array(getattr(seen, name)) for name in ARRAYS}
    spec = replace(task.spec, name=f"{task.spec.name}-selection")
    digest = hashlib.sha256(f"selection:{task.content_hash}".encode()).hexdigest()
    return PreparedTask(spec=spec, raw_stats=dict(task.raw_stats), content_hash=digest, **arrays)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of range(s, s + c) for each (s, c), vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(np.asarray(starts, dtype=np.int64), counts) + np.arange(counts.sum()) - offsets


def content_hash(spec: TaskSpec, arrays: dict[str, np.ndarray], raw_stats: dict) -> str:
    h = hashlib.sha256()
    h.update(f"tracer-bench-task/{FORMAT_VERSION}/{spec.spec_hash()}".encode())
    _hash_arrays(h, raw_stats, arrays, ARRAYS)
    return h.hexdigest()


def _hash_arrays(h, raw_stats: dict, arrays: dict[str, np.ndarray], names: tuple[str, ...]):
    h.update(json.dumps(raw_stats, sort_keys=True).encode())
    for name in names:
        a = arrays[name]
        if a.dtype.kind == "U":
            data = "\0".join(a.tolist()).encode("utf-8")
        else:
            data = np.ascontiguousarray(a).tobytes()
        h.update(f"{name}:{a.dtype.kind}:{a.shape}:{len(data)}".encode())
        h.update(data)


BASE_ARRAYS = tuple(name for name in ARRAYS if name != "forget_mask")


def base_hash(spec: TaskSpec, arrays: dict[str, np.ndarray], raw_stats: dict) -> str:
    """What a base model (item features, tokenizer, weights) depends on: the prepared data
    without the concept's forget mask, the preprocessing and the split protocol, and the source
    (it shapes the item text). Not the task's name, version, concept, K values or forget-set
    sample: every concept task on the same data shares one base model."""
    h = hashlib.sha256()
    data_spec = {
        "source": spec.dataset.source,
        "preprocess": dataclasses.asdict(spec.preprocess),
        "split": {"protocol": spec.split.protocol, "n_test": spec.split.n_test},
    }
    h.update(f"tracer-bench-base/{FORMAT_VERSION}/{json.dumps(data_spec, sort_keys=True)}".encode())
    _hash_arrays(h, raw_stats, arrays, BASE_ARRAYS)
    return h.hexdigest()


def _sorted_ids(ids: pd.Series) -> np.ndarray:
    uniq = pd.unique(ids)
    if all(s.isdigit() for s in uniq):
        return np.array(sorted(uniq, key=int), dtype=str)
    return np.array(sorted(uniq), dtype=str)


def item_paths(meta: pd.DataFrame) -> list[tuple[str, ...] | None]:
    """Each item's category path where its source knows it (an optional `path` column)."""
    if "path" not in meta.columns:
        return [None] * len(meta)
    return [tuple(p) if isinstance(p, (tuple, list)) else None for p in meta["path"]]


def unknown_concept(spec: TaskSpec, source: str, concepts: list, paths: list, label: str) -> str:
    """One short line: the closest labels with their item counts, and the command that lists
    them all."""
    counts = label_counts(concepts, paths)
    if not counts:
        return (f"task {spec.identity}: unknown concept {label!r}: the items of "
                f"{source} carry no labels")  # fmt: skip
    close = closest_labels(label, counts) if len(counts) > CLOSE else [
        f"{k!r} ({v} items)" for k, v in counts.most_common()
    ]  # fmt: skip
    n_names = sum(NODE_SEP not in x for x in counts)
    return (f"task {spec.identity}: unknown concept {label!r} for {source} "
            f"({n_names} names); closest: {', '.join(close) or 'none'}; all of them with "
            "`tracer-bench tasks concepts TASK` (the task's name or file)")  # fmt: skip


def build_arrays(spec: TaskSpec, raw: RawDataset) -> tuple[dict[str, np.ndarray], dict]:
    pp = spec.preprocess
    df = raw.interactions[["user", "item", "timestamp", "rating"]]
    raw_stats = {
        "users": int(df["user"].nunique()),
        "items": int(len(pd.unique(pd.concat([df["item"], raw.items["item"]])))),
        "interactions": len(df),
    }
    listed = raw.items["item"]
    if listed.duplicated().any():
        item = listed[listed.duplicated()].iloc[0]
        raise BenchError(f"task {spec.identity}: {raw.name}: item {item!r} has more than one "
                         "metadata row")  # fmt: skip
    missing = ~df["item"].isin(set(listed))
    if missing.any():
        first, n_items = df["item"][missing].iloc[0], df["item"][missing].nunique()
        if pp.on_missing_item == "error":
            raise BenchError(
                f"task {spec.identity}: {raw.name}: {int(missing.sum())} interactions name "
                f"{n_items} items without a metadata row (first: {first!r}); their concept is "
                'unknown: add the rows, or set [preprocess] on_missing_item = "drop"'
            )
        _log(f"dropping {int(missing.sum())} interactions with {n_items} items without metadata")
        raw_stats["dropped_missing_item_interactions"] = int(missing.sum())
        df = df[~missing]
    if pp.min_rating > 0:
        df = df[df["rating"] >= pp.min_rating]
    # a repeated (user, item) keeps its first occurrence: a sequence recommends new items
    df = df.sort_values(["user", "timestamp", "item"], kind="stable")
    df = df.drop_duplicates(["user", "item"], keep="first")
    while True:  # iterative k-core
        uc, ic = df["user"].value_counts(), df["item"].value_counts()
        bad_u, bad_i = uc.index[uc < pp.user_core], ic.index[ic < pp.item_core]
        if len(bad_u) == 0 and len(bad_i) == 0:
            break
        df = df[~df["user"].isin(bad_u) & ~df["item"].isin(bad_i)]
    if df.empty:
        raise BenchError(
            f"task {spec.identity}: no interaction survives the {pp.user_core}/{pp.item_core}-core "
            "filter"
        )
    user_ids, item_ids = _sorted_ids(df["user"]), _sorted_ids(df["item"])
    u = pd.Index(user_ids).get_indexer(df["user"])
    i = pd.Index(item_ids).get_indexer(df["item"])
    order = np.lexsort((i, df["timestamp"].to_numpy(), u))
    u, i, t = u[order], i[order], df["timestamp"].to_numpy()[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=len(user_ids)))])

    meta = raw.items.drop_duplicates("item").set_index("item").reindex(item_ids)
    concepts = [tuple(c) if isinstance(c, (tuple, list)) else () for c in meta["concepts"]]
    paths = item_paths(meta)
    forget = np.zeros(len(item_ids), dtype=bool)
    for label in spec.concept.labels:
        mask = concept_mask(label, concepts, paths)
        if not mask.any():
            raise BenchError(unknown_concept(spec, raw.name, concepts, paths, label))
        forget |= mask

    def text(col: str) -> np.ndarray:
        return np.array(meta[col].fillna("").astype(str).tolist(), dtype=str)

    arrays = {
        "user_ids": user_ids,
        "item_ids": item_ids,
        "item_titles": text("title"),
        "item_years": text("year"),
        "item_texts": text("text"),
        "item_concepts": np.array([LABEL_SEP.join(c) for c in concepts], dtype=str),
        "forget_mask": forget,
        "seq_offsets": offsets.astype(np.int64),
        "seq_items": i.astype(np.int64),
        "seq_times": t.astype(np.int64),
    }
    return arrays, raw_stats


def _evaluation_needs(task: PreparedTask) -> list[tuple[str, int, str]]:
    """(what, how many the task has, why the evaluation needs at least one). Each side of the
    concept must be non-empty: forgetting is measured on the forget side, retained utility and
    the retrain oracle on the retain side (DESIGN §5)."""
    return [
        ("forget-test targets", len(task.forget_test), "forgetting is measured on them"),
        ("forget training examples (D_f)", len(task.d_forget),
         "methods unlearn them; the forget set is sampled from them"),
        ("retain-test targets", len(task.retain_test),
         "retained utility is the NDCG ratio on them"),
        ("retain training examples (D_r)", len(task.d_retain),
         "the retrain oracle is trained on D_r only"),
        ("retain-validation users", len(task.retain_valid_users),
         "the oracle's epoch is chosen on their validation targets"),
    ]  # fmt: skip


def _check_evaluable(task: PreparedTask) -> None:
    """One line naming every side of the concept too small to evaluate, and why."""
    spec = task.spec
    short = [f"{n} {what} (needs >= 1: {why})" for what, n, why in _evaluation_needs(task) if n < 1]
    if short:
        n_forget = len(task.forget_items)
        raise BenchError(
            f"task {spec.identity}: concept {spec.concept.label!r} covers {n_forget} of "
            f"{task.n_items} items and leaves {'; '.join(short)} after preprocessing; the task "
            "cannot be evaluated"
        )


def _from_arrays(spec: TaskSpec, arrays: dict, raw_stats: dict, digest: str) -> PreparedTask:
    task = PreparedTask(spec=spec, raw_stats=raw_stats, content_hash=digest, **arrays)
    _check_evaluable(task)  # before prepare_task caches it
    return task


def _cache_key(spec: TaskSpec, files: dict[str, Path]) -> str:
    stats = {n: [p.stat().st_size, p.stat().st_mtime_ns] for n, p in sorted(files.items())}
    blob = json.dumps([FORMAT_VERSION, spec.spec_hash(), stats], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def task_cache_dir(spec: TaskSpec, files: dict[str, Path]) -> Path:
    return cache_path("tasks", spec.identity, _cache_key(spec, files))


def _load_cached(spec: TaskSpec, folder: Path) -> PreparedTask | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAYS}
    except (OSError, ValueError, KeyError):
        return None
    if content_hash(spec, arrays, meta["raw_stats"]) != meta.get("content_hash"):
        return None
    return _from_arrays(spec, arrays, meta["raw_stats"], meta["content_hash"])


def _write_cache(folder: Path, arrays: dict, meta: dict) -> None:
    """Readers never see a partial cache, and concurrent preparers of one task do not clash."""
    with folder_atomic(folder) as tmp:
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def prepare_task(spec: TaskSpec, rebuild: bool = False) -> PreparedTask:
    """Prepared data for `spec`, from the cache when it is intact, else built and cached."""
    source = SOURCES[spec.dataset.source]
    files = source.fetch(spec.dataset)
    for name, expected in spec.dataset.checksums.items():
        if name in files:  # sources verify checksums of archives they unpack themselves
            verify_checksum(files[name], expected)
    folder = task_cache_dir(spec, files)
    if not rebuild and folder.exists():
        cached = _load_cached(spec, folder)
        if cached is not None:
            return cached
        _log(f"cache at {folder} is damaged or stale: rebuilding")
    _log(f"preparing {spec.identity} from {spec.dataset.source}")
    raw = source.read(files, spec.dataset)
    arrays, raw_stats = build_arrays(spec, raw)
    digest = content_hash(spec, arrays, raw_stats)
    task = _from_arrays(spec, arrays, raw_stats, digest)
    meta = {
        "task": spec.identity,
        "spec": spec.to_dict(),
        "raw_stats": raw_stats,
        "content_hash": digest,
        "summary": task.summary(),
        "format": FORMAT_VERSION,
    }
    _write_cache(folder, arrays, meta)
    return task


# ---- sequential tasks (tasks.sequence): a step's requests -----------------------------------


def item_requests(steps: list[PreparedTask]) -> np.ndarray:
    """Per item, the request that forgot it (1..j for steps 1..j; 0: in no concept), from the
    prepared steps in order (step i's F is C1 ∪ … ∪ Ci)."""
    request = np.zeros(steps[0].n_items, dtype=np.int64)
    for i, step in reversed(list(enumerate(steps, start=1))):
        request[step.forget_mask] = i
    return request


def request_view(step: PreparedTask, earlier: PreparedTask | None) -> PreparedTask:
    """Step j's task as its request is made: F is Cj's items not forgotten before (`step`'s F
    minus `earlier`'s, step j−1's), the earlier requests' items forgotten (in neither F nor R).
    The same data, identity and hashes as `step`; `tasks.prepare.method_view` then hides its
    test targets."""
    if earlier is None:
        return step
    if earlier.base_hash != step.base_hash or (earlier.forget_mask & ~step.forget_mask).any():
        raise BenchError(f"{earlier.spec.identity} is not the step before {step.spec.identity}")
    arrays = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
    arrays["forget_mask"] = step.forget_mask & ~earlier.forget_mask
    arrays["forgotten_mask"] = np.array(earlier.forget_mask)
    view = PreparedTask(**arrays)
    view.__dict__["base_hash"] = step.base_hash
    return view
