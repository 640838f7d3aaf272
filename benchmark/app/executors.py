"""Where a grid's (task, seed) groups run. Every executor has one method, `run(groups, work,
handle)`: it runs `work(group, emit)` for each group somewhere — in this process, in `--jobs N`
local processes, or on Dask workers — and hands every event the work emits to `handle`, in this
process (DESIGN §7). The work writes nothing: a finished cell travels as bytes in a "cell" event,
and the client (the runner) writes it, so the grid, resume and failure semantics are the same for
every executor and Dask workers need no shared filesystem. A group that cannot finish (its
process died, its worker was lost too often) is reported once as a "lost" event.

Dask: one task per group (`pure=False`, a key unique to the run). A worker that dies has its
running group rescheduled by the scheduler (up to `distributed.scheduler.allowed-failures`
times), which recomputes it; the group returns its cells' files when it finishes, and a cell
delivered twice is written once. Progress steps come back through the scheduler's event log.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple, Protocol

from benchmark.recommender.device import configure_device


class Group(Protocol):
    """What an executor needs of a unit of work (the runner's (task, seed) groups): a label for
    its events. The work itself is the `Work` callable's business."""

    @property
    def label(self) -> str: ...

    @property
    def n_cells(self) -> int:
        """How many cells the group finishes (each reported as one "cell" event)."""
        ...


class Event(NamedTuple):
    """What a group reports. kind "step": payload says what it is doing; "cell": payload is a
    finished cell's `runner.CellOutput`; "lost": payload says why the group's unfinished cells
    are lost. `worker` names the Dask worker running the group ("" elsewhere)."""

    kind: str
    label: str  # the group's label, e.g. "ml100k-horror seed 0"
    payload: object = ""
    worker: str = ""


Emit = Callable[[Event], None]
Work = Callable[[Group, Emit], None]


class Executor(Protocol):
    def run(self, groups: Sequence[Group], work: Work, handle: Emit) -> dict[str, int]:
        """Run `work` on every group, every event delivered to `handle` in this process; returns
        {worker: groups it finished}."""
        ...


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class InProcess:
    """Groups one after the other in this process (`--jobs 1`)."""

    def run(self, groups: Sequence[Group], work: Work, handle: Emit) -> dict[str, int]:
        for g in groups:
            work(g, handle)
        return {f"local process {os.getpid()}": len(groups)} if groups else {}


_EVENTS = None  # in a pool process: the queue its groups report through


def _pool_init(threads: int, parent: int, events) -> None:
    global _EVENTS
    _EVENTS = events
    set_torch_threads(threads)
    configure_device()

    def watch() -> None:  # a worker whose parent was killed stops instead of running on
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def _run_in_pool(work: Work, group: Group) -> str:
    work(group, _EVENTS.put)
    return f"local process {os.getpid()}"


class ProcessPool:
    """`jobs` local processes running groups side by side, each with its share of the cores
    (two torch processes on the same cores slow each other down sharply)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def run(self, groups: Sequence[Group], work: Work, handle: Emit) -> dict[str, int]:
        threads = max(1, usable_cores() // self.jobs)
        ctx = mp.get_context("spawn")
        # a plain queue handed to the workers at start (no Manager: a manager is a server process
        # of its own, which outlives a SIGKILLed run); the workers watch their parent
        events = ctx.Queue()
        cells: Counter[str] = Counter()

        def deliver(event: Event) -> None:
            cells[event.label] += event.kind == "cell"
            handle(event)

        with ProcessPoolExecutor(
            self.jobs, mp_context=ctx, initializer=_pool_init,
            initargs=(threads, os.getpid(), events),
        ) as pool:  # fmt: skip
            futures = [pool.submit(_run_in_pool, work, g) for g in groups]
            # a worker's last events can still be in its queue's feeder thread when its future
            # completes: read until every finished group has reported each of its cells
            expected, deadline = None, 0.0
            while expected is None or (
                sum(cells.values()) < expected and time.monotonic() < deadline
            ):
                if expected is None and all(f.done() for f in futures):
                    ok = [g for f, g in zip(futures, groups, strict=True) if not f.exception()]
                    expected, deadline = sum(g.n_cells for g in ok), time.monotonic() + 10
                try:
                    deliver(events.get(timeout=0.2))
                except queue.Empty:
                    pass
        workers: Counter[str] = Counter()
        for f, g in zip(futures, groups, strict=True):
            if f.exception() is not None:  # a worker died (e.g. out of memory)
                handle(Event("lost", g.label, f"{f.exception()}"))
            else:
                workers[f.result()] += 1
        return dict(workers)


def worker_threads(concurrent: int) -> int:
    """Torch threads for a group on this Dask worker: $TRACER_BENCH_THREADS if set, else the
    cores this process may use shared among the groups it runs at once."""
    env = os.environ.get("TRACER_BENCH_THREADS")
    return int(env) if env else max(1, usable_cores() // max(1, concurrent))


def _run_on_dask_worker(
    work: Work, group: Group, topic: str, threads: int | None, exclusive: bool
) -> tuple[str, list[Event]]:
    """One group on a Dask worker: steps go to the client through the scheduler's event log,
    the cells' outputs come back as this task's result."""
    from distributed import get_worker

    worker = get_worker()
    set_torch_threads(threads or worker_threads(1 if exclusive else worker.state.nthreads))
    configure_device()
    outputs: list[Event] = []

    def emit(event: Event) -> None:
        if event.kind == "step":
            worker.log_event(topic, [event.kind, event.label, event.payload, worker.address])
        else:
            outputs.append(event._replace(worker=worker.address))

    work(group, emit)
    return worker.address, outputs


class DaskExecutor:
    """Groups as tasks of a Dask cluster that `client` is connected to. `threads`: torch threads
    per group (None: each worker decides, see `worker_threads`); `resources`: what each group
    holds while it runs (e.g. {"GPU": 1}: a GPU worker takes one group at a time)."""

    def __init__(
        self, client, threads: int | None = None, resources: dict[str, float] | None = None
    ) -> None:
        self.client, self.threads, self.resources = client, threads, resources or None

    def run(self, groups: Sequence[Group], work: Work, handle: Emit) -> dict[str, int]:
        topic = f"tracer-bench-{uuid.uuid4().hex}"
        steps: queue.SimpleQueue = queue.SimpleQueue()
        self.client.subscribe_topic(topic, lambda event: steps.put(event[1]))
        try:
            return self._run(groups, work, handle, topic, steps)
        finally:
            self.client.unsubscribe_topic(topic)

    def _run(self, groups, work, handle, topic, steps) -> dict[str, int]:
        futures = {
            self.client.submit(
                _run_on_dask_worker, work, g, topic, self.threads, self.resources is not None,
                key=f"{topic}-{i}", pure=False, retries=1, resources=self.resources,
            ): g
            for i, g in enumerate(groups)
        }  # fmt: skip
        pending, workers = set(futures), Counter()
        while pending:
            try:
                handle(Event(*steps.get(timeout=0.2)))
                while True:
                    handle(Event(*steps.get_nowait()))
            except queue.Empty:
                pass
            for future in [f for f in pending if f.done()]:
                pending.discard(future)
                group = futures[future]
                try:
                    worker, outputs = future.result()
                except Exception as exc:  # lost too often, or the scheduler went away
                    handle(Event("lost", group.label, f"{type(exc).__name__}: {exc}"))
                    continue
                finally:
                    future.release()
                for event in outputs:
                    handle(event)
                handle(Event("step", group.label, "finished", worker))
                workers[worker] += 1
        return dict(workers)
