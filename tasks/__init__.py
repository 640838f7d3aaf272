"""Datasets, concepts, splits and the task registry."""

from tasks.errors import BenchError
from tasks.prepare import PreparedTask, prepare_task
from tasks.registry import get_task, standard_tasks
from tasks.spec import TaskSpec
from tasks.taskfile import load_task_file

__all__ = [
    "BenchError", "PreparedTask", "TaskSpec", "get_task", "load_task_file", "prepare_task",
    "standard_tasks",
]  # fmt: skip
