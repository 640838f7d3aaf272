"""The standard suite (the TOML files in tasks/standard/) and lookup by name or path."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tasks.errors import BenchError
from tasks.spec import TaskSpec
from tasks.taskfile import load_task_file

STANDARD_DIR = Path(__file__).parent / "standard"
QUICK_TASK = "ml100k-horror"


@lru_cache(maxsize=1)
def standard_tasks() -> dict[str, TaskSpec]:
    specs = [load_task_file(p) for p in sorted(STANDARD_DIR.glob("*.toml"))]
    return {s.name: s for s in specs}


def get_task(name_or_path: str) -> TaskSpec:
    """A standard task by name (a standard sequence's steps included: `<sequence>.<j>`,
    `<sequence>.all`), or a user's task file by path (anything ending in .toml)."""
    from tasks.sequence import sequence_step_task

    if name_or_path.endswith(".toml") or Path(name_or_path).is_file():
        return load_task_file(name_or_path)
    tasks = standard_tasks()
    step = sequence_step_task(name_or_path)
    if step is not None:
        return step
    if name_or_path not in tasks:
        raise BenchError(
            f"unknown task {name_or_path!r}; valid names: {', '.join(sorted(tasks))} "
            "(or the path of a task .toml file)"
        )
    return tasks[name_or_path]


SUITES: dict[str, tuple[tuple[str, ...] | None, tuple[int, ...]]] = {
    # name -> (task names, None = every standard task; seeds). Every suite runs every method.
    "quick": ((QUICK_TASK,), (0,)),
    "ml100k": (("ml100k-horror", "ml100k-childrens", "ml100k-romance"), (0, 1, 2)),
    "standard": (None, (0, 1, 2)),
}


def suite(name: str) -> tuple[list[str], list[int]]:
    """The task names and seeds of a named suite (quick, ml100k, standard)."""
    if name not in SUITES:
        raise BenchError(f"unknown suite {name!r}; valid suites: {', '.join(SUITES)}")
    tasks, seeds = SUITES[name]
    return list(tasks or standard_tasks()), list(seeds)
