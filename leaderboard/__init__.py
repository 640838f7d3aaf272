"""Leaderboard: tables (md / csv / latex / html), trade-off plots and a static HTML page built
from a results folder (DESIGN §6)."""

from leaderboard.table import (
    ResultsError,
    format_table,
    leaderboard_table,
    load_results,
)

__all__ = ["ResultsError", "format_table", "leaderboard_table", "load_results"]
