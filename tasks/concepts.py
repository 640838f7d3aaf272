"""Concepts as the community writes them (DESIGN §3, category paths): which items a concept label
names, the closest labels when it names none, and a dataset's concept tree with item counts.

An item carries its labels (every name it has: a genre, each node of its category path) and,
where the source knows it, its category path as an ordered tuple of node names. A label is a name
("3D Printing Supplies": every item whose labels hold it, so every item whose path passes through
that node) or a path of nodes joined by " > " ("Skin Care > Face": the node Face under Skin Care,
where a name repeats under two parents). For a path the source could only keep as ", "-joined
runs (the Amazon 2014 exports, whose names contain ", "), a node path matches the run that joins
its nodes with ", ". No torch, no project imports beyond the error type."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence

import numpy as np

NODE_SEP = " > "
CLOSE = 5  # labels proposed for an unknown concept


def node_path(label: str) -> tuple[str, ...] | None:
    """The nodes of a " > "-joined label; None for a plain name."""
    if NODE_SEP not in label:
        return None
    return tuple(p.strip() for p in label.split(NODE_SEP))


def _passes_through(path: Sequence[str], nodes: tuple[str, ...]) -> bool:
    n = len(nodes)
    return any(tuple(path[i : i + n]) == nodes for i in range(len(path) - n + 1))


def concept_mask(
    label: str, labels: Sequence[tuple[str, ...]], paths: Sequence[tuple[str, ...] | None]
) -> np.ndarray:
    """Which items the label names: a plain name by the items' labels; a node path by their
    category paths (consecutive nodes), or by the ", "-joined run where no path is known."""
    nodes = node_path(label)
    if nodes is None:
        return np.array([label in c for c in labels], dtype=bool)
    run = ", ".join(nodes)
    return np.array([
        _passes_through(p, nodes) if p is not None else run in c
        for c, p in zip(labels, paths, strict=True)
    ], dtype=bool)  # fmt: skip


def label_counts(
    labels: Sequence[tuple[str, ...]], paths: Sequence[tuple[str, ...] | None]
) -> Counter:
    """Items per label, node paths of two or more levels included where paths are known."""
    counts: Counter = Counter()
    for c, p in zip(labels, paths, strict=True):
        names = set(c)
        if p is not None:
            names |= {NODE_SEP.join(p[i : j + 1]) for j in range(len(p)) for i in range(j)}
        counts.update(names)
    return counts


def closest_labels(label: str, counts: Counter, n: int = CLOSE) -> list[str]:
    """The labels nearest to an unknown one, each with its item count: by spelling, then by
    shared words (a user who writes "Printer Ink" means "Printer Ink & Toner")."""
    path_label = NODE_SEP in label  # a name is answered with names, a node path with paths
    names = [x for x in counts if (NODE_SEP in x) == path_label]
    close = difflib.get_close_matches(label, names, n=n, cutoff=0.6)
    words = {w.lower() for w in label.replace(">", " ").split()}
    if len(close) < n and words:
        by_words = sorted(
            (x for x in names if x not in close and words & {w.lower() for w in x.split()}),
            key=lambda x: (-len(words & {w.lower() for w in x.split()}), -counts[x], x),
        )
        close += by_words[: n - len(close)]
    return [f"{x!r} ({counts[x]} items)" for x in close]


def _display_paths(labels: tuple[str, ...]) -> list[tuple[str, ...]]:
    longest = max(labels, key=len, default="")
    if len(labels) > 1 and ", " in longest and all(x in longest for x in labels):
        return [tuple(longest.split(", "))]
    return [(x,) for x in labels]


def tree_lines(
    labels: Sequence[tuple[str, ...]],
    paths: Sequence[tuple[str, ...] | None],
    max_depth: int | None = None,
) -> list[str]:
    """The concept tree, one node per line indented by depth, with the items under it (most
    items first). An item without a known path whose labels are the runs of one ", "-joined path
    (the 2014 exports) is placed along that path's ", "-parts, each itself a label; any other
    item's labels are top-level nodes."""
    tree: dict = {}
    counts: Counter = Counter()
    for c, p in zip(labels, paths, strict=True):
        seen = set()
        for nodes in [tuple(p)] if p is not None else _display_paths(c):
            for depth in range(1, len(nodes) + 1):
                prefix = nodes[:depth]
                if prefix not in seen:
                    seen.add(prefix)
                    counts[prefix] += 1
                    branch = tree
                    for name in prefix:
                        branch = branch.setdefault(name, {})
    lines: list[str] = []

    def walk(branch: dict, prefix: tuple[str, ...]) -> None:
        if max_depth is not None and len(prefix) >= max_depth:
            return
        for name in sorted(branch, key=lambda x: (-counts[prefix + (x,)], x)):
            lines.append(f"{'  ' * len(prefix)}{name} ({counts[prefix + (name,)]})")
            walk(branch[name], prefix + (name,))

    walk(tree, ())
    return lines


def dataset_concepts(target: str, separator: str = "", max_depth: int | None = None) -> list[str]:
    """`tracer-bench tasks concepts`: the concept tree of a task's dataset (a standard task's name
    or a task file) or of a genrec-json data folder, counted over the items of its metadata
    (before any preprocessing), after a header line."""
    from pathlib import Path

    from tasks.errors import BenchError
    from tasks.registry import get_task
    from tasks.sources import SOURCES
    from tasks.sources.genrec_json import read_items

    folder = Path(target)
    if folder.is_dir():
        found = sorted(folder.glob("*.item.json"))
        if len(found) != 1:
            raise BenchError(f"{folder}: expected one <prefix>.item.json (genrec-json), found "
                             f"{len(found)}")  # fmt: skip
        items, where = read_items(found[0], separator), str(found[0])
    else:
        spec = get_task(target)
        source = SOURCES[spec.dataset.source]
        items = source.read(source.fetch(spec.dataset), spec.dataset).items
        where = f"{spec.identity} ({spec.dataset.source})"
    labels = [tuple(c) if isinstance(c, (tuple, list)) else () for c in items["concepts"]]
    paths = list(items["path"]) if "path" in items.columns else [None] * len(items)
    paths = [tuple(p) if isinstance(p, (tuple, list)) else None for p in paths]
    header = (f"{len(items)} items in {where}, counted before preprocessing; a concept label is "
              f"a name below, or a path of names joined by {NODE_SEP!r} "
              "(e.g. \"Skin Care > Face\")")  # fmt: skip
    return [header, *tree_lines(labels, paths, max_depth)]
