"""Search spaces: the few hyper-parameters of a method worth tuning, and their ranges, declared
next to its `Config` as `search_space = {"lr": LogUniform(1e-4, 2e-3), ...}` (DESIGN §4).
`tracer-bench tune` draws every method's configurations from its space with the same budget."""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass

import numpy as np


def _round(x: float) -> float:
    """Three significant digits: configurations that read as they are recorded."""
    return float(f"{x:.3g}")


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return _round(rng.uniform(self.low, self.high))

    def text(self) -> str:
        return f"[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class LogUniform(Uniform):
    def sample(self, rng: np.random.Generator) -> float:
        return _round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def text(self) -> str:
        return f"[{self.low:g}, {self.high:g}] log"


@dataclass(frozen=True)
class IntLogUniform:
    low: int
    high: int

    def sample(self, rng: np.random.Generator) -> int:
        return int(round(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))

    def text(self) -> str:
        return f"{{{self.low}..{self.high}}} log"


Param = Uniform | IntLogUniform


def check_space(cls: type) -> None:
    """A method's search space names fields of its Config, with low < high."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for name, param in cls.search_space.items():
        if name not in fields:
            raise ValueError(f"{cls.__name__}.search_space names {name!r}, not a Config field")
        if not param.low < param.high:
            raise ValueError(f"{cls.__name__}.search_space[{name!r}]: low must be below high")


def trial_overrides(cls: type, budget: int, seed: int) -> list[dict]:
    """`budget` configurations of a method as Config overrides: trial 0 is its defaults, the
    others are drawn from its space by a generator seeded by (seed, method name), so a method's
    trials do not depend on which other methods are tuned beside it."""
    check_space(cls)
    rng = np.random.default_rng([seed, zlib.crc32(cls.name.encode())])
    return [{}] + [
        {name: param.sample(rng) for name, param in sorted(cls.search_space.items())}
        for _ in range(budget - 1)
    ]


def space_text(cls: type) -> str:
    """The search space as the README's method table shows it."""
    if cls.tune_as:
        return f"`{cls.tune_as}`'s chosen configuration"
    return ", ".join(f"`{k}` ∈ {p.text()}" for k, p in cls.search_space.items()) or "—"
