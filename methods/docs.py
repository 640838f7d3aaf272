"""Method documentation generated from the registry, so the README cannot drift from the code."""

from __future__ import annotations

import dataclasses

from methods.registry import available_methods
from methods.search import space_text


def methods_markdown() -> str:
    lines = [
        "| method | version | what it does | hyper-parameters (defaults) | `tune` searches |",
        "|---|---|---|---|---|",
    ]
    for name, cls in sorted(available_methods().items()):
        doc = " ".join((cls.__doc__ or "").split())
        params = ", ".join(
            f"`{f.name}={getattr(cls.Config(), f.name)!r}`" for f in dataclasses.fields(cls.Config)
        )
        lines.append(f"| `{name}` | {cls.version} | {doc} | {params or '—'} | {space_text(cls)} |")
    return "\n".join(lines)
