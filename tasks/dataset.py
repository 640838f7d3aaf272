"""The common in-memory form every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tasks.errors import DataFormatError

INTERACTION_COLUMNS = ("user", "item", "timestamp", "rating")
ITEM_COLUMNS = ("item", "title", "year", "text", "concepts")


@dataclass(frozen=True)
class RawDataset:
    """Interactions and item metadata as read from a source, before any task preprocessing.

    interactions: columns user (str), item (str), timestamp (int64), rating (float64, NaN if none).
    items: columns item (str), title (str), year (str, '' if unknown), text (str: extra content such
    as a description or category path), concepts (tuple[str, ...]: the concept labels of the item,
    e.g. MovieLens genres or the nodes of an Amazon category path), and optionally path
    (tuple[str, ...] or None: the item's category path, node by node, where the source knows it;
    node-path concept labels match it, `tasks.concepts`).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame

    def __post_init__(self) -> None:
        for frame, cols, what in (
            (self.interactions, INTERACTION_COLUMNS, "interactions"),
            (self.items, ITEM_COLUMNS, "items"),
        ):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise DataFormatError(f"{self.name}: {what} table lacks column(s) {missing}")
