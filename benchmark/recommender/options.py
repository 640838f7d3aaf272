"""Config dicts that keep old hashes: an option added to a config later is left out of its dict
while it holds the value every recipe had before the option existed, so adding an option moves no
existing cache key or backbone hash."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


def asdict_without_legacy(cfg: Any, added: tuple[tuple[str, Any], ...]) -> dict:
    """`asdict(cfg)` less each (field, legacy value) of `added` whose field holds that value."""
    d = asdict(cfg)
    for name, legacy in added:
        if d[name] == legacy:
            d.pop(name)
    return d
