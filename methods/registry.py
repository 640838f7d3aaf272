"""Methods by name, all found through the entry-point group `tracer_bench.methods` (name = method
name, value = "module:Class"): the built-ins are declared in tracer-bench's own pyproject.toml
exactly as a third-party package declares its methods."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from methods.base import UnlearningMethod
from tasks.errors import BenchError

ENTRY_POINT_GROUP = "tracer_bench.methods"
DISTRIBUTION = "tracer-bench"


def _is_builtin(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.name == DISTRIBUTION


def _load(ep: EntryPoint) -> type[UnlearningMethod]:
    try:
        cls = ep.load()
    except Exception as exc:  # a broken plugin must not break the harness
        raise BenchError(f"method plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, UnlearningMethod)):
        raise BenchError(f"method plugin {ep.name!r} ({ep.value}) is not an UnlearningMethod")
    if cls.name != ep.name:
        raise BenchError(f"method plugin {ep.name!r} ({ep.value}) names itself {cls.name!r}")
    return cls


def available_methods() -> dict[str, type[UnlearningMethod]]:
    """The built-ins, then third-party methods; a built-in name cannot be shadowed."""
    eps = list(entry_points(group=ENTRY_POINT_GROUP))
    builtin = [ep for ep in eps if _is_builtin(ep)]
    if not builtin:
        raise BenchError("no built-in methods registered: install tracer-bench (pip install -e .)")
    found: dict[str, type[UnlearningMethod]] = {}
    for ep in builtin + [ep for ep in eps if not _is_builtin(ep)]:
        if ep.name not in found:
            found[ep.name] = _load(ep)
    return found


def get_method(name: str) -> type[UnlearningMethod]:
    methods = available_methods()
    if name not in methods:
        raise BenchError(f"unknown method {name!r}; valid names: {', '.join(sorted(methods))}")
    return methods[name]
