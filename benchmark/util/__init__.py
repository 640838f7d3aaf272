"""Shared utilities with no project imports (the one leaf every package may use): atomic writes,
file hashes, peak memory."""
