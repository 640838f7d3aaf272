"""A task is declarative data: a frozen dataclass tree, built strictly from a TOML table
(`tasks.taskfile` reads the file)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field

from tasks.errors import TaskFileError
from tasks.typed import typed


@dataclass(frozen=True)
class DatasetSpec:
    source: str  # one of tasks.sources.SOURCES: ml-100k, ml-1m, amazon-2023, atomic, genrec-json
    revision: str = ""  # upstream version: a package pin, an archive name, a Hub commit
    checksums: dict[str, str] = field(
        default_factory=dict
    )  # file name -> "sha256:<hex>"/"md5:<hex>"
    category: str = ""  # amazon-2023: the category file name, e.g. Health_and_Household
    interactions: str = ""  # amazon-2023: "reviews" (raw review JSONL) or "5core" (rating CSV)
    path: str = ""  # atomic: folder holding <name>.inter and <name>.item; genrec-json: the folder
    prefix: str = ""  # genrec-json: the files are <prefix>.inter.json and <prefix>.item.json
    fields: dict[str, str] = field(default_factory=dict)  # atomic: our column -> file column
    # genrec-json: how a string category path joins its nodes: "," (a ", " then belongs to a
    # name, as in Amazon 2018 exports), ", " (2014 exports), any other string; "" detects it
    category_separator: str = ""


@dataclass(frozen=True)
class PreprocessSpec:
    min_rating: float = 0.0  # keep interactions with rating >= this (0 keeps all)
    user_core: int = 5  # iterative k-core: every user keeps >= user_core interactions
    item_core: int = 5  # ... and every item >= item_core
    max_history: int = 50  # the model sees at most this many most recent items
    # an interaction whose item has no metadata row (no concept labels, so a forget item could
    # count as retain): "error" (the default) or "drop" (drop those interactions, counted)
    on_missing_item: str = "error"


@dataclass(frozen=True)
class ConceptSpec:
    label: str  # an item is in the forget set F iff its concept labels contain this label
    description: str = ""
    # further labels whose items are in F too: the union of several concepts (a sequential
    # task's step, or its concepts removed as one request; `tasks.sequence`)
    union_with: tuple[str, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label whose items are in F, the earlier requests' first (`union_with`)."""
        return (*self.union_with, self.label)


@dataclass(frozen=True)
class SplitSpec:
    # per user, chronological. "last-n" (protocol 2.0): the last n_test interactions are test
    # targets (fewer for short histories, so that at least 3 remain for training), each predicted
    # from everything before it; the one before them is the validation target. "leave-one-out"
    # (protocol 1.x): last = test, second-last = validation.
    protocol: str = "last-n"
    n_test: int = 5
    forget_set_size: int = 2000  # the forget-set evaluation pool: a seeded sample of D_f
    seed: int = 0  # seed of that sample


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: str
    dataset: DatasetSpec
    concept: ConceptSpec
    description: str = ""
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    k_values: tuple[int, ...] = (5, 10, 20)
    main_score: str = "erasure_score"
    # the base recipe's departures from the harness default, as [backbone.<part>] tables of
    # fields (part: features, sid, arch, train); checked and applied by
    # benchmark.recommender.backbone.task_backbone. Not part of the data: it moves no data hash
    backbone: dict[str, dict] = field(default_factory=dict)
    # the evaluation protocol's departures from the harness default, as an [evaluation] table
    # (beam, relearning, ...); checked and applied by benchmark.metrics.protocol. Not part of
    # the data: it moves no data hash
    evaluation: dict[str, object] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def spec_hash(self) -> str:
        """Hash of everything that defines the prepared data (not the free-text descriptions)."""
        d = self.to_dict()
        d.pop("description")
        d.pop("backbone")
        d.pop("evaluation")
        d["concept"].pop("description")
        # options added after protocol 2.0 count only when set, so no existing identity moves
        for table, name, default in ADDED_OPTIONS:
            if d[table][name] == default:
                d[table].pop(name)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


PROTOCOLS = ("last-n", "leave-one-out")
ON_MISSING_ITEM = ("error", "drop")
ADDED_OPTIONS = (("preprocess", "on_missing_item", "error"), ("dataset", "prefix", ""),
                 ("dataset", "category_separator", ""), ("concept", "union_with", ()))  # fmt: skip
MIN_TRAIN = 3  # last-n keeps at least this many training interactions per user
MAIN_SCORES = ("erasure_score",)
# name and version form the task's identity `name@version`, a folder name in the cache: a short
# slug and MAJOR.MINOR, so no task file can name a path (DESIGN §6, hostile input)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
VERSION_PATTERN = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}")


def build_spec(table: dict, file: str) -> TaskSpec:
    """A task's spec from its TOML table (`tasks.typed`: every field checked, one-line errors)."""
    return typed(TaskSpec, table, file, error=TaskFileError)


def _shown(value: str, limit: int = 80) -> str:
    """A value quoted for a one-line error, cut to `limit` characters."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def check_spec(spec: TaskSpec, file: str) -> None:
    """The task file's own rules (its source's rules: `tasks.sources.check_source`)."""

    def bad(where: str, why: str) -> TaskFileError:
        return TaskFileError(f"{file}: field '{where}' {why}")

    if not NAME_PATTERN.fullmatch(spec.name):
        raise bad("name", "must be 1 to 64 ASCII letters, digits, '-', '_' or '.', starting with a "
                  f"letter or digit, got {_shown(spec.name)}")  # fmt: skip
    if not VERSION_PATTERN.fullmatch(spec.version):
        raise bad(
            "version", f"must be MAJOR.MINOR (digits, e.g. '2.0'), got {_shown(spec.version)}"
        )
    if spec.split.protocol not in PROTOCOLS:
        raise bad(
            "split.protocol", f"must be one of {list(PROTOCOLS)}, got {spec.split.protocol!r}"
        )
    if spec.main_score not in MAIN_SCORES:
        raise bad("main_score", f"must be one of {list(MAIN_SCORES)}, got {spec.main_score!r}")
    if spec.preprocess.user_core < 3:
        raise bad("preprocess.user_core", "must be >= 3 (a user needs train, valid and test)")
    if spec.preprocess.on_missing_item not in ON_MISSING_ITEM:
        raise bad("preprocess.on_missing_item", f"must be one of {list(ON_MISSING_ITEM)}, got "
                  f"{spec.preprocess.on_missing_item!r}")  # fmt: skip
    if spec.preprocess.item_core < 1:
        raise bad("preprocess.item_core", "must be >= 1")
    if spec.preprocess.max_history < 1:
        raise bad("preprocess.max_history", "must be >= 1")
    if not spec.k_values or any(k < 1 for k in spec.k_values):
        raise bad("k_values", "must be a non-empty list of positive integers")
    if 10 not in spec.k_values:
        raise bad(
            "k_values", f"must include 10 (the headline is taken at @10), got {list(spec.k_values)}"
        )
    if spec.split.n_test < 1:
        raise bad("split.n_test", "must be >= 1")
    if spec.split.forget_set_size < 1:
        raise bad("split.forget_set_size", "must be >= 1")
    if not spec.concept.label:
        raise bad("concept.label", "must be non-empty")
    labels = spec.concept.labels
    if not all(labels) or len(set(labels)) != len(labels):
        shown = [_shown(x) for x in spec.concept.union_with]
        raise bad("concept.union_with", "must hold non-empty labels, each once and none the "
                  f"concept's label, got {shown}")  # fmt: skip
    separator = spec.dataset.category_separator
    if separator and (spec.dataset.source != "genrec-json" or len(separator) > 8
                      or not separator.strip(" ") or "\n" in separator):  # fmt: skip
        raise bad("dataset.category_separator", "is a genrec-json option: 1 to 8 characters, not "
                  f"only spaces (e.g. \",\" or \", \"), got {_shown(separator)}")  # fmt: skip
    for name, value in spec.dataset.checksums.items():
        algo, _, digest = value.partition(":")
        if algo not in ("sha256", "md5") or not digest:
            raise bad(f"dataset.checksums.{name}", "must look like 'sha256:<hex>' or 'md5:<hex>'")
