"""Config dicts that keep old hashes: an option added to a config later is left out of its dict
while it holds the value every recipe had before the option existed, so adding an option moves no
existing cache key or backbone hash. An option withdrawn later (kept as a patch under
reports/patches/) stays in its config's dict at the one value every recipe held, so withdrawing
it moves none either; a config that names it is refused with one line naming the patch, except a
recorded config (a result's recipe, a cached tokenizer) that holds it at that value."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from tasks.errors import BenchError
from tasks.typed import typed

T = TypeVar("T")


@dataclass(frozen=True)
class Withdrawn:
    """A withdrawn option: its field, the value every recipe held, the patch that adds it back."""

    name: str
    value: Any
    patch: str

    def refusal(self) -> str:
        return f"option {self.name!r} was withdrawn (reports/patches/{self.patch} adds it back)"


def asdict_without_legacy(cfg: Any, added: tuple[tuple[str, Any], ...]) -> dict:
    """`asdict(cfg)` less each (field, legacy value) of `added` whose field holds that value."""
    d = asdict(cfg)
    for name, legacy in added:
        if d[name] == legacy:
            d.pop(name)
    return d


def config_dict(cfg: Any, added: tuple[tuple[str, Any], ...] = ()) -> dict:
    """The dict a config is hashed and recorded by: `asdict_without_legacy`, plus each of its
    class's withdrawn options (`WITHDRAWN`) at the value every recipe held."""
    d = asdict_without_legacy(cfg, added)
    d.update({w.name: w.value for w in withdrawn_options(type(cfg))})
    return d


def withdrawn_options(cls: type) -> tuple[Withdrawn, ...]:
    return getattr(cls, "WITHDRAWN", ())


def withdrawn_option(cls: type, name: str) -> Withdrawn | None:
    return next((w for w in withdrawn_options(cls) if w.name == name), None)


def without_withdrawn(cls: type, data: dict, where: str) -> dict:
    """A recorded config dict less the withdrawn options of `cls`, each of which it may hold only
    at the value every recipe held; a one-line BenchError starting with `where` otherwise."""
    out = dict(data)
    for w in withdrawn_options(cls):
        if w.name in out:
            value = out.pop(w.name)
            if type(w.value) is float and type(value) is int:
                value = float(value)
            if type(value) is not type(w.value) or value != w.value:
                raise BenchError(f"{where}: {w.refusal()}; only {w.value!r} is read")
    return out


def recorded_config(cls: type[T], data: object, where: str) -> T:
    """A config dataclass from untrusted JSON (a result's recipe, a tokenizer's or checkpoint's
    config): `tasks.typed` after the withdrawn options it may hold at their one value."""
    if not isinstance(data, dict):
        raise BenchError(f"{where}: expected a JSON object, found {type(data).__name__}")
    return typed(cls, without_withdrawn(cls, data, where), where)
