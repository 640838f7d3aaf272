"""Task files: a TOML file read strictly into a `TaskSpec`, checked by the spec's rules and by its
dataset source's."""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.errors import TaskFileError
from tasks.sources import check_source
from tasks.sources.common import utf8_problem
from tasks.spec import TaskSpec, build_spec, check_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_TASK_FILE_BYTES = 2**20  # a task file is a few hundred bytes; a bound keeps hostile ones cheap


def spec_from_dict(table: dict, file: str = "<task>") -> TaskSpec:
    spec = build_spec(table, file)
    assert isinstance(spec, TaskSpec)
    check_spec(spec, file)
    check_source(spec.dataset, file)
    return spec


def _task_text(path: Path) -> str:
    """The task file's text: at most MAX_TASK_FILE_BYTES of UTF-8, else one-line TaskFileError."""
    try:
        size = path.stat().st_size
        if size > MAX_TASK_FILE_BYTES:
            raise TaskFileError(f"{path}: {size} bytes, more than the {MAX_TASK_FILE_BYTES} a task "
                                "file may have")  # fmt: skip
        data = path.read_bytes()
    except FileNotFoundError:
        raise TaskFileError(f"{path}: task file not found") from None
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read the task file ({exc.strerror or exc})") from None
    problem = utf8_problem(path, data)
    if problem:
        raise TaskFileError(problem)
    return data.decode("utf-8")


def read_table(path: Path) -> dict:
    """A task or sequence file's TOML table; a one-line TaskFileError otherwise."""
    text = _task_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(f"{path}: not valid TOML ({exc})") from None
    except ValueError:  # an integer of more digits than Python converts
        raise TaskFileError(f"{path}: not valid TOML (a number with too many digits)") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise TaskFileError(f"{path}: not valid TOML (nested too deeply)") from None


def load_task_file(path: str | Path) -> TaskSpec:
    path = Path(path)
    return spec_from_dict(read_table(path), str(path))
