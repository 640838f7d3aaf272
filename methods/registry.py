"""Methods by name: the built-in ones, plus third-party packages that declare an entry point in
the group `tracer_bench.methods` (name = method name, value = "module:Class")."""

from __future__ import annotations

from importlib.metadata import entry_points

from methods.base import UnlearningMethod
from tasks.errors import BenchError

ENTRY_POINT_GROUP = "tracer_bench.methods"
_BUILTIN: dict[str, type[UnlearningMethod]] = {}


def register(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
    """Class decorator for the built-in methods."""
    _BUILTIN[cls.name] = cls
    return cls


def available_methods() -> dict[str, type[UnlearningMethod]]:
    import methods.baselines  # noqa: F401  (registers the built-ins)
    import methods.tracer  # noqa: F401

    found = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue  # a built-in name cannot be shadowed
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break the harness
            raise BenchError(
                f"method plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, UnlearningMethod)):
            raise BenchError(f"method plugin {ep.name!r} ({ep.value}) is not an UnlearningMethod")
        found[ep.name] = cls
    return found


def get_method(name: str) -> type[UnlearningMethod]:
    methods = available_methods()
    if name not in methods:
        raise BenchError(f"unknown method {name!r}; valid names: {', '.join(sorted(methods))}")
    return methods[name]
