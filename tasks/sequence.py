"""Sequential tasks (DESIGN §3): one dataset and an ordered list of concepts C1..Ck, forgotten one
request after another, each request applied to the model the previous one left.

A sequence file is a task file whose `[concept]` table is replaced by a `[sequence]` table: the
concepts in request order (each a label and a description) and the reason for that order. Step j is
a task of its own, `<name>.<j>`: its F is C1 ∪ … ∪ Cj (`ConceptSpec.union_with`), which its
evaluation and its retrain oracle use. The method at step j sees `tasks.prepare.request_view`: F is
Cj's items not forgotten before, the earlier concepts' items are in neither F nor R (D_r holds the
examples whose target lies in none of C1..Cj). `<name>.all` removes the k concepts as one request:
step k's data under another name, the comparison point for arriving one at a time."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tasks.errors import BenchError, TaskFileError
from tasks.spec import ConceptSpec, TaskSpec
from tasks.typed import typed

SEQUENCE_DIR = Path(__file__).parent / "standard" / "sequences"
MAX_STEPS = 8
ALL = "all"  # the step name of the concepts removed as one request
STEP_NAME = re.compile(r"(?P<sequence>.+)\.(?P<step>[1-9][0-9]*|all)")


@dataclass(frozen=True)
class RequestSpec:
    label: str  # a concept label, as a task's [concept] label
    description: str = ""


@dataclass(frozen=True)
class SequenceTable:
    concepts: tuple[RequestSpec, ...]  # in request order
    reason: str = ""  # why these concepts, in this order


@dataclass(frozen=True)
class SequenceSpec:
    """A sequential task: the task fields every step shares (`template`, whose concept is C1)
    and the requests."""

    template: TaskSpec
    sequence: SequenceTable

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def identity(self) -> str:
        return self.template.identity

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.sequence.concepts)

    def __len__(self) -> int:
        return len(self.sequence.concepts)

    def step(self, j: int) -> TaskSpec:
        """Step j's task (1-based): F = C1 ∪ … ∪ Cj, its request Cj."""
        if not 1 <= j <= len(self):
            raise BenchError(f"sequence {self.identity} has steps 1..{len(self)}, not {j}")
        request = self.sequence.concepts[j - 1]
        concept = ConceptSpec(request.label, request.description, self.labels[: j - 1])
        return dataclasses.replace(self.template, name=f"{self.name}.{j}", concept=concept)

    def steps(self) -> list[TaskSpec]:
        return [self.step(j) for j in range(1, len(self) + 1)]

    def all_at_once(self) -> TaskSpec:
        """The k concepts removed as one request: step k's data under the name `<name>.all`."""
        last = self.step(len(self))
        return dataclasses.replace(last, name=f"{self.name}.{ALL}")

    def tasks(self) -> list[TaskSpec]:
        """Every task of the sequence: its steps, then the all-at-once task."""
        return [*self.steps(), self.all_at_once()]


def sequence_from_dict(table: dict, file: str) -> SequenceSpec:
    """A sequence from its TOML table: every task field checked as for a task file."""
    from tasks.taskfile import spec_from_dict

    table = dict(table)
    if "concept" in table:
        raise TaskFileError(f"{file}: a sequence names its concepts in [sequence] concepts, not "
                            "in a [concept] table")  # fmt: skip
    if "sequence" not in table:
        raise TaskFileError(f"{file}: missing the [sequence] table (concepts in request order)")
    seq = typed(SequenceTable, table.pop("sequence"), file, prefix="sequence", error=TaskFileError)
    labels = [c.label for c in seq.concepts]
    if not 2 <= len(labels) <= MAX_STEPS:
        raise TaskFileError(f"{file}: field 'sequence.concepts' must name 2 to {MAX_STEPS} "
                            f"concepts, got {len(labels)}")  # fmt: skip
    if not all(labels) or len(set(labels)) != len(labels):
        raise TaskFileError(f"{file}: field 'sequence.concepts' must hold non-empty labels, "
                            f"each once, got {labels}")  # fmt: skip
    template = spec_from_dict({**table, "concept": {"label": labels[0]}}, file)
    if len(template.name) > 60:
        raise TaskFileError(f"{file}: field 'name' must be at most 60 characters for a "
                            "sequence (its steps are named <name>.<step>)")  # fmt: skip
    return SequenceSpec(template, seq)


def load_sequence_file(path: str | Path) -> SequenceSpec:
    from tasks.taskfile import read_table

    return sequence_from_dict(read_table(Path(path)), str(path))


def is_sequence_file(path: str | Path) -> bool:
    """Whether a .toml file declares a sequence (a [sequence] table) rather than a task."""
    from tasks.taskfile import read_table

    try:
        return "sequence" in read_table(Path(path))
    except BenchError:
        return False


@lru_cache(maxsize=1)
def standard_sequences() -> dict[str, SequenceSpec]:
    seqs = [load_sequence_file(p) for p in sorted(SEQUENCE_DIR.glob("*.toml"))]
    return {s.name: s for s in seqs}


def get_sequence(name_or_path: str) -> SequenceSpec:
    """A standard sequence by name, or a user's sequence file by path."""
    if name_or_path.endswith(".toml") or Path(name_or_path).is_file():
        return load_sequence_file(name_or_path)
    seqs = standard_sequences()
    if name_or_path not in seqs:
        names = ", ".join(sorted(seqs))
        raise BenchError(f"unknown sequence {name_or_path!r}; valid names: {names} (or the path "
                         "of a sequence .toml file)")  # fmt: skip
    return seqs[name_or_path]


def sequence_step_task(name: str) -> TaskSpec | None:
    """A standard sequence's step (`<sequence>.<j>`) or all-at-once task (`<sequence>.all`) by
    name; None when `name` is not one."""
    m = STEP_NAME.fullmatch(name)
    seq = standard_sequences().get(m["sequence"]) if m else None
    if m is None or seq is None:
        return None
    if m["step"] == ALL:
        return seq.all_at_once()
    j = int(m["step"])
    return seq.step(j) if j <= len(seq) else None
