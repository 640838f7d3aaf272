"""Task files: a TOML file read strictly into a `TaskSpec`, checked by the spec's rules and by its
dataset source's."""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.errors import TaskFileError
from tasks.sources import check_source
from tasks.spec import TaskSpec, build_spec, check_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def spec_from_dict(table: dict, file: str = "<task>") -> TaskSpec:
    spec = build_spec(TaskSpec, table, "", file)
    assert isinstance(spec, TaskSpec)
    check_spec(spec, file)
    check_source(spec.dataset, file)
    return spec


def load_task_file(path: str | Path) -> TaskSpec:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except FileNotFoundError:
        raise TaskFileError(f"{path}: task file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(f"{path}: not valid TOML ({exc})") from None
    return spec_from_dict(table, str(path))
