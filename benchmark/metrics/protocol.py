"""The evaluation protocol (DESIGN §5): what a cell is evaluated with. A task declares its
departures from the harness's defaults (an `[evaluation]` table in its task file, kept as a dict
in `TaskSpec.evaluation`); `protocol_config` turns them into the `EvalConfig` of a run and
`evaluation_problems` says how a result's recorded `evaluation` block departs from it. Torch-free;
a task is duck-typed (anything with `.spec.k_values`), and a bad table is a `ProtocolError` (a
ValueError) that the caller names its task in."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeGuard, cast

from benchmark.metrics.registry import HEADLINE_K

# the retrain oracle: every method of a (task, seed) is scored against it, and its own row is the
# reference (scored against another seed's oracle: the noise ceiling). Its training:
# benchmark.recommender.oracle
ORACLE = "retrain"


def is_oracle(method_name: str) -> bool:
    return method_name == ORACLE


SPLITS = ("test", "valid")
RUN_FIELDS = ("seed", "split")  # set by the run, never by the task


@dataclass(frozen=True)
class EvalConfig:
    ks: tuple[int, ...] | None = None  # None: the task's k_values
    beam: int = 20
    relearn_steps: int = 30
    relearn_sample: int = 256
    relearn_lr: float = 1e-3
    # latent ranks (every item scored) on a seeded sample of this many forget-set examples, the
    # same for every model of a task: the exact scoring is the costliest part of evaluation
    # (400 since protocol 2.0's quick-suite budget; 800 before: reports/profile-cpu.md)
    latent_sample: int = 400
    geometry_items: int = 400
    seed: int = 0
    split: str = "test"  # "valid": validation targets, for choosing hyper-parameters

    def k_values(self, task) -> tuple[int, ...]:
        """The K values evaluated: the task's (or this config's), always with the headline's K."""
        return tuple(sorted(set(self.ks or task.spec.k_values) | {HEADLINE_K}))


class ProtocolError(ValueError):
    """A task's [evaluation] table that is not a protocol (the caller names the task)."""


# the smallest value of each count a task may declare
MINIMUM = {"beam": 1, "relearn_steps": 0, "relearn_sample": 1, "latent_sample": 1,
           "geometry_items": 2}  # fmt: skip


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int  # a bool is not a count


def _is_number(value: object) -> TypeGuard[int | float]:
    return type(value) in (int, float) and math.isfinite(cast(float, value))


def _is_ks(value: object) -> TypeGuard[list[int] | tuple[int, ...]]:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(_is_int(k) and k >= 1 for k in value)
    )


def _declared(name: str, value: object) -> object:
    """A task's value for protocol field `name`, typed like the field; ProtocolError otherwise."""
    if name == "ks":
        if not _is_ks(value):
            raise ProtocolError(f"evaluation.ks must be a non-empty list of positive integers, "
                                f"got {value!r}")  # fmt: skip
        return tuple(value)
    if name == "relearn_lr":
        if not _is_number(value) or value <= 0:
            raise ProtocolError(f"evaluation.relearn_lr must be a positive number, got {value!r}")
        return float(value)
    if not _is_int(value) or value < MINIMUM[name]:
        raise ProtocolError(f"evaluation.{name} must be an integer >= {MINIMUM[name]}, "
                            f"got {value!r}")  # fmt: skip
    return value


def protocol_config(spec_evaluation: dict, seed: int, split: str = "test") -> EvalConfig:
    """The EvalConfig of a run of a task whose [evaluation] table is `spec_evaluation`: the
    harness's defaults with the table's fields, the run's seed and split. ProtocolError naming
    the field when a field is unknown, set by the run, or not of its type."""
    if not isinstance(spec_evaluation, dict):
        raise ProtocolError(f"evaluation must be a table, got {type(spec_evaluation).__name__}")
    if split not in SPLITS:
        raise ProtocolError(f"split must be one of {list(SPLITS)}, got {split!r}")
    known = [f.name for f in dataclasses.fields(EvalConfig) if f.name not in RUN_FIELDS]
    for name in spec_evaluation:
        if name not in known:
            why = "is set by the run" if name in RUN_FIELDS else f"is unknown (known: {known})"
            raise ProtocolError(f"evaluation.{name} {why}")
    # values of several types, each checked by _declared against its own field
    fields: dict[str, Any] = {k: _declared(k, v) for k, v in spec_evaluation.items()}
    return EvalConfig(**fields, seed=seed, split=split)


def _same(have: object, want: object) -> bool:
    """Equal and of the same kind: 1 is not True, 20.0 is not the count 20; a float field may
    be recorded as an integer of the same value."""
    if isinstance(want, tuple):
        return (
            isinstance(have, (list, tuple))
            and len(have) == len(want)
            and all(_same(h, w) for h, w in zip(have, want, strict=True))
        )
    if type(want) is float:
        return _is_number(have) and have == want
    return type(have) is type(want) and have == want


def _short(value: object) -> str:
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def evaluation_problems(evaluation: dict | None, expected: EvalConfig) -> list[str]:
    """How a result's recorded evaluation block departs from `expected` (the task's protocol at
    the record's seed and split): one short line per differing, missing or unknown field; a
    missing block is one line. [] when they agree."""
    if evaluation is None:
        return ["evaluation is missing (the task's protocol must be recorded)"]
    if not isinstance(evaluation, dict):
        return [f"evaluation must be an object, got {type(evaluation).__name__}"]
    want = {f.name: getattr(expected, f.name) for f in dataclasses.fields(EvalConfig)}
    problems = [f"evaluation.{name[:40]} is not a field of the protocol"
                for name in evaluation if name not in want]  # fmt: skip
    for name, value in want.items():
        if name not in evaluation:
            problems.append(f"evaluation.{name} is missing, the task's protocol says "
                            f"{_short(value)}")  # fmt: skip
        elif not _same(evaluation[name], value):
            problems.append(f"evaluation.{name} is {_short(evaluation[name])}, the task's "
                            f"protocol says {_short(value)}")  # fmt: skip
    return problems
