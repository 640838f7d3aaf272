"""The one error type users see. The CLI prints its message on one line and exits with status 2."""

from __future__ import annotations


class BenchError(Exception):
    """Bad input or a broken precondition, explained in one line (what is wrong and where)."""


class DataFormatError(BenchError):
    """A data file with missing columns or unparsable rows."""


class ChecksumError(BenchError):
    """Downloaded or local source files whose checksum differs from the task's declaration."""


class TaskFileError(BenchError):
    """A task file with a missing, unknown or mistyped field."""
