"""The one converter from parsed JSON or TOML to a frozen dataclass tree: task files, recorded
recipes and tokenizer configs, result records. Input is untrusted: every field is checked against
its annotation (a bool is not an int, an int stands for a float, a list for a tuple), and anything
else is one line naming the field."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from types import UnionType
from typing import Any, Literal, TypeVar

from tasks.errors import BenchError

T = TypeVar("T")
SCALARS = (bool, int, float, str)


def typed(
    cls: type[T],
    data: object,
    where: str,
    *,
    base: T | None = None,
    prefix: str = "",
    unknown: Literal["refuse", "drop"] = "refuse",
    finite: bool = True,
    error: type[BenchError] = BenchError,
) -> T:
    """An instance of the dataclass `cls` from a JSON object; a field missing from `data` takes
    its value in `base` (when given) or its default. `unknown="drop"` ignores fields `cls` does
    not have; `finite=False` lets floats be NaN or infinite. Errors read
    `<where>: field '<prefix.name>' ...`, raised as `error`."""
    return _Reader(where, unknown == "drop", finite, error).dataclass(cls, data, prefix, base)


@dataclass(frozen=True)
class _Reader:
    where: str
    drop_unknown: bool
    finite: bool
    error: type[BenchError]

    def fail(self, message: str) -> BenchError:
        return self.error(f"{self.where}: {message}")

    def dataclass(self, cls: Any, data: object, at: str, base: Any = None) -> Any:
        if not isinstance(data, dict):
            field = f"field '{at}' " if at else ""
            raise self.fail(f"{field}must be a table (a JSON object), got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        extra = sorted(set(data) - set(fields), key=str)
        if extra and not self.drop_unknown:
            name = _dotted(at, str(extra[0])[:40])
            raise self.fail(f"unknown field '{name}' (known: {', '.join(sorted(fields))})")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, f in fields.items():
            if name in data:
                values[name] = self.value(data[name], hints[name], _dotted(at, name))
            elif base is not None:
                values[name] = getattr(base, name)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.fail(f"missing required field '{_dotted(at, name)}'")
        try:
            return cls(**values)
        except BenchError as exc:
            raise self.fail(str(exc)) from None

    def value(self, value: object, tp: Any, at: str) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, at)
        if origin in (typing.Union, UnionType):
            for arg in args:
                try:
                    return self.value(value, arg, at)
                except BenchError:
                    continue
            raise self.wrong(value, at, " or ".join(_name(a) for a in args))
        if origin is tuple:
            if not isinstance(value, list | tuple):
                raise self.wrong(value, at, "a list")
            return tuple(self.value(v, args[0], f"{at}[{i}]") for i, v in enumerate(value))
        if origin is dict or tp is dict:
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise self.wrong(value, at, "a table")
            if not args:
                return dict(value)
            return {k: self.entry(v, args[1], f"{at}.{k}") for k, v in value.items()}
        return self.scalar(value, tp, at)

    def entry(self, value: object, tp: Any, at: str) -> Any:
        """A table's entry: `dict` is a table of scalars, `object` a scalar or a list of them."""
        if tp is dict:
            if not isinstance(value, dict) or not all(
                isinstance(x, SCALARS) for x in value.values()
            ):
                raise self.wrong(value, at, "a table of numbers, booleans or strings")
            return dict(value)
        if tp is object:
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(x, SCALARS) for x in items):
                raise self.wrong(value, at, "a number, boolean, string or a list of them")
            return list(items) if isinstance(value, list) else value
        return self.value(value, tp, at)

    def scalar(self, value: object, tp: Any, at: str) -> Any:
        if tp is type(None) and value is None:
            return None
        if tp is float and type(value) in (int, float):
            number = float(value)  # type: ignore[arg-type]
            if self.finite and not math.isfinite(number):
                raise self.wrong(value, at, "a finite number")
            return number
        if tp in SCALARS and type(value) is tp:
            return value
        if tp is Any or tp is object:
            return value
        raise self.wrong(value, at, _name(tp))

    def wrong(self, value: object, at: str, want: str) -> BenchError:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return self.fail(f"field '{at}' must be {want}, got {type(value).__name__} {shown}")


def _dotted(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _name(tp: object) -> str:
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))
