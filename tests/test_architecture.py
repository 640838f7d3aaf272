"""The architecture of DESIGN §9, checked on the source: every import (module-level or inside a
function) between the project's modules goes down the layers, and no import cycle exists.

`python tests/test_architecture.py [ROOT]` prints the forbidden arrows and cycles of any tree."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("benchmark", "methods", "tasks", "leaderboard")
LEAF = ("benchmark", "benchmark.util")  # the version string and the shared utilities
# room -> the rooms its modules may import (besides their own room and the leaf)
ALLOWED: dict[str, set[str]] = {
    "benchmark.util": set(),
    "tasks": set(),
    "benchmark.metrics": set(),
    "benchmark.recommender": {"tasks", "benchmark.metrics"},
    "benchmark.evaluation": {"tasks", "benchmark.metrics", "benchmark.recommender"},
    "benchmark.results": {
        "tasks",
        "benchmark.metrics",
        "benchmark.recommender",
        "benchmark.evaluation",
    },
    "methods": {"tasks", "benchmark.metrics", "benchmark.recommender"},
    "leaderboard": {"tasks", "benchmark.metrics", "benchmark.results"},
    "benchmark.app": {
        "tasks",
        "benchmark.metrics",
        "benchmark.recommender",
        "benchmark.evaluation",
        "benchmark.results",
        "methods",
        "leaderboard",
    },
}
# modules whose whole import closure must be free of torch and of every method
NO_TORCH = (
    "leaderboard",
    "benchmark.metrics",
    "benchmark.results.record",
    "benchmark.results.record",
)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, path: Path) -> set[str]:
    """Every module `path` imports, with `from a import b` counted as a.b when a.b is a module."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))]
    modules = {module_name(root, p): p for p in files}
    edges = {}
    for name, path in modules.items():
        deps = set()
        for target in imports_of(root, path):
            top = target.split(".")[0]
            if top in PACKAGES:
                # `from pkg import name` where name is not a module: the package itself
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                if target in modules and target != name:
                    deps.add(target)
            elif top == "torch":
                deps.add("torch")
        edges[name] = deps
    return edges


def room(module: str) -> str | None:
    for r in sorted(ALLOWED, key=len, reverse=True):
        if module == r or module.startswith(r + "."):
            return r
    return None


def is_leaf(module: str) -> bool:
    return module == LEAF[0] or module == LEAF[1] or module.startswith(LEAF[1] + ".")


def forbidden_arrows(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for src, deps in sorted(edges.items()):
        mine = room(src)
        if mine is None and src != LEAF[0]:
            out.append(f"{src}: in no room of the architecture")
            continue
        for dst in sorted(deps - {"torch"}):
            if mine is None or mine == "benchmark.util":
                if not is_leaf(dst):  # the leaf imports nothing of the project's
                    out.append(f"{src} -> {dst}")
            elif not (is_leaf(dst) or room(dst) == mine or room(dst) in ALLOWED[mine]):
                out.append(f"{src} -> {dst}")
    return out


def closure(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(edges.get(m, ()))
    return seen


def torch_or_method_reach(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for m in sorted(edges):
        if any(m == p or m.startswith(p + ".") for p in NO_TORCH):
            bad = sorted(d for d in closure(edges, m) if d == "torch" or d.startswith("methods"))
            if bad:
                out.append(f"{m} reaches {', '.join(bad)}")
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


# what is written in one place only (DESIGN §9): a metric name is parsed in the registry, the
# oracle is named in the protocol (its training: benchmark/recommender/oracle.py)
METRIC_PARSE = ('partition("@")', 'split("@"', "split('@'", "partition('@')")
METRIC_HOME = "benchmark/metrics/registry.py"
ORACLE_NAME = ('"retrain"', "'retrain'")
ORACLE_HOME = "benchmark/metrics/protocol.py"


def written_outside(root: Path, needles: tuple[str, ...], home: str) -> list[str]:
    """`file:line` of every line holding one of `needles` outside the module `home`."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            if path.relative_to(root).as_posix() == home:
                continue
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if any(p in line for p in needles):
                    out.append(f"{path.relative_to(root).as_posix()}:{n}")
    return out


# the command line's one room (DESIGN §9): no other module parses a command line
CLI_ROOM = "benchmark.app.cli"


def argparse_outside_cli(root: Path) -> list[str]:
    """Every module outside the CLI room that imports argparse."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            name = module_name(root, path)
            if name == CLI_ROOM or name.startswith(CLI_ROOM + "."):
                continue
            if any(m == "argparse" or m.startswith("argparse.") for m in imports_of(root, path)):
                out.append(name)
    return out


# the tests' one shared module: a test module imports helpers and fixtures from tests/conftest.py,
# never from another test module
TESTS = "tests"


def imports_of_test_modules(root: Path) -> list[str]:
    """`module -> test module` for every module under tests/ that imports a test module."""
    out = []
    for path in sorted((root / TESTS).rglob("*.py")):
        found = set()
        for m in imports_of(root, path):
            parts = m.split(".")
            if parts[0] == TESTS:
                parts = parts[1:]
            if parts and parts[0].startswith("test_"):
                found.add(parts[0])
        out.extend(f"{module_name(root, path)} -> {m}" for m in sorted(found))
    return out


def metric_name_parses(root: Path) -> list[str]:
    return written_outside(root, METRIC_PARSE, METRIC_HOME)


def oracle_names(root: Path) -> list[str]:
    return written_outside(root, ORACLE_NAME, ORACLE_HOME)


ROOT = Path(__file__).resolve().parents[1]


def test_every_import_goes_down_the_layers():
    assert forbidden_arrows(graph(ROOT)) == []


def test_leaderboard_and_numpy_modules_reach_no_torch_and_no_method():
    assert torch_or_method_reach(graph(ROOT)) == []


def test_no_import_cycle():
    assert cycles(graph(ROOT)) == []


def test_metric_names_are_parsed_only_in_the_registry(tmp_path):
    assert metric_name_parses(ROOT) == []
    (tmp_path / "leaderboard").mkdir()
    (tmp_path / "leaderboard" / "x.py").write_text('k = name.partition("@")[2]\n')
    assert metric_name_parses(tmp_path) == ["leaderboard/x.py:1"]


def test_the_oracle_is_named_only_in_the_protocol(tmp_path):
    assert oracle_names(ROOT) == []
    (tmp_path / "benchmark" / "app").mkdir(parents=True)
    (tmp_path / "benchmark" / "app" / "cell.py").write_text('if name == "retrain":\n    pass\n')
    assert oracle_names(tmp_path) == ["benchmark/app/cell.py:1"]


def test_only_the_cli_parses_command_lines(tmp_path):
    assert argparse_outside_cli(ROOT) == []
    for name, text in {
        "leaderboard/cli.py": "import argparse\n",
        "benchmark/results/x.py": "def f():\n    from argparse import Namespace\n",
        "benchmark/app/cli/__init__.py": "import argparse\n",
        "benchmark/app/cli/run.py": "from argparse import ArgumentParser\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert argparse_outside_cli(tmp_path) == ["benchmark.results.x", "leaderboard.cli"]


def test_no_test_module_imports_another(tmp_path):
    assert imports_of_test_modules(ROOT) == []
    for name, text in {
        "tests/conftest.py": "import json\n",
        "tests/test_a.py": "from conftest import TINY\nfrom test_b import helper\n",
        "tests/test_b.py": "def f():\n    import test_c\n",
        "tests/test_c.py": "from tests.test_a import x\nfrom tests import test_b\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert imports_of_test_modules(tmp_path) == [
        "tests.test_a -> test_b",
        "tests.test_b -> test_c",
        "tests.test_c -> test_a",
        "tests.test_c -> test_b",
    ]


def test_the_checks_see_a_forbidden_arrow_and_a_cycle(tmp_path):
    for name, text in {
        "tasks/__init__.py": "",
        "tasks/spec.py": "from tasks import sources\n",
        "tasks/sources.py": "def f():\n    from tasks.spec import x\n",
        "benchmark/__init__.py": "",
        "benchmark/recommender/__init__.py": "",
        "benchmark/recommender/model.py": "import torch\nfrom methods.base import M\n",
        "methods/__init__.py": "",
        "methods/base.py": "",
        "leaderboard/__init__.py": "",
        "leaderboard/table.py": "from benchmark.recommender.model import X\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = graph(tmp_path)
    assert forbidden_arrows(edges) == [
        "benchmark.recommender.model -> methods.base",
        "leaderboard.table -> benchmark.recommender.model",
    ]
    assert torch_or_method_reach(edges) == [
        "leaderboard.table reaches methods.base, torch",
    ]
    assert cycles(edges) == [["tasks.sources", "tasks.spec"]]


if __name__ == "__main__":
    edges = graph(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    for line in forbidden_arrows(edges) + torch_or_method_reach(edges):
        print(line)
    for name in argparse_outside_cli(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(f"{name} imports argparse outside {CLI_ROOM}")
    for line in imports_of_test_modules(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(f"{line}: a test module imports another (shared helpers go in tests/conftest.py)")
    for c in cycles(edges):
        print("cycle:", " <-> ".join(c))
