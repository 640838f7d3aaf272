"""The Dask cluster a grid runs on with `tracer-bench run --executor dask` (DESIGN §7): an existing
scheduler (`--scheduler ADDRESS`, or the path of its scheduler file), a local cluster of N worker
processes (`--cluster local:N`, every listener on 127.0.0.1, no dashboard), or Slurm through
dask-jobqueue (`--cluster slurm --cluster-config FILE`). Bad input is a one-line BenchError.

A Slurm config is a TOML file with one `[slurm]` table; every key is optional:

    [slurm]
    queue = "gpu"            # partition (#SBATCH -p)
    account = "my-lab"       # #SBATCH -A
    cores = 8                # cores per job; each worker's groups use cores / processes threads
    memory = "32GB"          # memory per job
    walltime = "04:00:00"
    processes = 1            # worker processes per job, each running one group at a time
    gpus = 1                 # 0 or 1 per job: --gres=gpu:1, worker resource GPU=1, device cuda
    jobs = 4                 # jobs to start (one worker each with processes = 1)
    job_extra = ["--qos=normal"]                  # more #SBATCH lines
    prologue = ["source ~/venvs/tracer/bin/activate"]  # shell lines before the worker starts
    python = "python3"       # the workers' interpreter
    interface = "ib0"        # the network interface the scheduler and workers listen on
    local_directory = "/tmp"

Keys left out fall back to dask-jobqueue's own configuration (~/.config/dask/jobqueue.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmark.app.executors import DaskExecutor, usable_cores
from tasks.errors import BenchError

SLURM_KEYS: dict[str, type] = {
    "queue": str, "account": str, "cores": int, "memory": str, "walltime": str, "processes": int,
    "gpus": int, "jobs": int, "job_extra": list, "prologue": list, "python": str,
    "interface": str, "local_directory": str,
}  # fmt: skip
GROUP = "group"  # a worker resource: a Slurm worker process holds one, a group takes it


def parse_cluster(spec: str) -> tuple[str, int]:
    """ "local:N" -> ("local", N); "slurm" -> ("slurm", 0)."""
    kind, colon, n = spec.partition(":")
    if kind == "slurm" and not colon:
        return "slurm", 0
    if kind == "local" and n.isdigit() and int(n) >= 1:
        return "local", int(n)
    raise BenchError(f"--cluster {spec!r}: want local:N (N workers, N >= 1) or slurm")


def parse_resources(spec: str) -> dict[str, float]:
    """ "GPU=1" or "GPU=1,MEM=2" -> what each group holds while it runs."""
    out = {}
    for part in spec.split(","):
        name, eq, amount = part.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not (eq and name.strip() and value > 0):
            raise BenchError(f"--resources {spec!r}: want NAME=AMOUNT[,NAME=AMOUNT], e.g. GPU=1")
        out[name.strip()] = value
    return out


def load_slurm_config(path: Path | None) -> dict:
    """The `[slurm]` table of a config file ({} without one), every key and type checked."""
    if path is None:
        return {}
    from tasks.taskfile import tomllib

    try:
        with Path(path).open("rb") as fh:
            table = tomllib.load(fh)
    except OSError as exc:
        raise BenchError(f"--cluster-config {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"--cluster-config {path}: not valid TOML ({exc})") from None
    cfg = table.get("slurm")
    if not isinstance(cfg, dict) or set(table) != {"slurm"}:
        raise BenchError(f"--cluster-config {path}: want exactly one [slurm] table")
    for key, value in cfg.items():
        if key not in SLURM_KEYS:
            known = ", ".join(SLURM_KEYS)
            raise BenchError(f"{path}: unknown key {key!r} in [slurm] (keys: {known})")
        if not isinstance(value, SLURM_KEYS[key]) or isinstance(value, bool):
            raise BenchError(f"{path}: [slurm] {key} must be a {SLURM_KEYS[key].__name__}")
    if cfg.get("gpus", 0) not in (0, 1):
        raise BenchError(f"{path}: [slurm] gpus must be 0 or 1 (start more jobs for more GPUs)")
    return cfg


def slurm_cluster_kwargs(cfg: dict) -> tuple[dict, int, int | None, dict[str, float]]:
    """A `[slurm]` config -> (dask_jobqueue.SLURMCluster keyword arguments, jobs to start, torch
    threads per group (None: the worker decides), resources each group takes)."""
    processes = cfg.get("processes", 1)
    kwargs = {k: cfg[k] for k in ("queue", "account", "cores", "memory", "walltime", "python",
                                  "interface", "local_directory") if k in cfg}  # fmt: skip
    kwargs["processes"] = processes
    directives, prologue = list(cfg.get("job_extra", [])), list(cfg.get("prologue", []))
    resources = {GROUP: 1.0}
    if cfg.get("gpus"):
        directives.append("--gres=gpu:1")
        prologue.append("export TRACER_BENCH_DEVICE=cuda")
        resources["GPU"] = 1.0
    kwargs["job_extra_directives"] = directives
    kwargs["nanny"] = False  # a nanny's MALLOC_TRIM_THRESHOLD_ halves torch's speed (see below)
    kwargs["job_script_prologue"] = prologue
    kwargs["worker_extra_args"] = [
        "--resources", ",".join(f"{k}={v:g}" for k, v in resources.items())
    ]  # fmt: skip
    threads = max(1, cfg["cores"] // processes) if "cores" in cfg else None
    return kwargs, cfg.get("jobs", 1), threads, resources


@contextmanager
def _torch_speed_malloc() -> Iterator[None]:
    """Dask nannies export MALLOC_TRIM_THRESHOLD_=65536 before starting a worker (their
    `distributed.nanny.pre-spawn-environ`); glibc then returns freed memory eagerly and maps
    every large tensor afresh: a training step of the default model took 1049 ms instead of
    547 ms with it (one thread, reports/profile-cpu.md). Local workers start without it."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        yield


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def dask_executor(
    scheduler: str | None = None,
    cluster: str | None = None,
    cluster_config: Path | None = None,
    resources: dict[str, float] | None = None,
) -> Iterator[DaskExecutor]:
    """A Dask executor connected to the cluster the options name; closes what it started."""
    if (scheduler is None) == (cluster is None):
        raise BenchError("--executor dask needs --scheduler ADDRESS or --cluster local:N|slurm")
    kind, n = parse_cluster(cluster) if cluster else ("scheduler", 0)
    if cluster_config is not None and kind != "slurm":
        raise BenchError("--cluster-config is the Slurm config: use it with --cluster slurm")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise BenchError("--executor dask needs dask: pip install 'dask[distributed]'") from None
    if kind == "scheduler":
        with _connect(Client, scheduler) as client:
            _check_resources(client, resources)
            yield DaskExecutor(client, None, resources)
    elif kind == "local":
        with _torch_speed_malloc(), LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
            memory_limit=0, silence_logs=logging.ERROR,
        ) as local, Client(local) as client:  # fmt: skip
            _check_resources(client, resources)
            yield DaskExecutor(client, max(1, usable_cores() // n), resources)
    else:
        with _slurm(Client, load_slurm_config(cluster_config), resources) as executor:
            yield executor


@contextmanager
def _connect(client_type, scheduler: str) -> Iterator:
    file = Path(scheduler)
    target = {"scheduler_file": str(file)} if file.is_file() else {"address": scheduler}
    try:
        client = client_type(**target, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        why = _one_line(exc)
        raise BenchError(f"--scheduler {scheduler}: no Dask scheduler answered ({why})") from None
    with client:
        yield client


def _check_resources(client, resources: dict[str, float] | None) -> None:
    """Groups that need resources no connected worker has would wait forever: refuse them (a
    scheduler with no worker yet is let through: workers may still join)."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    held = [w.get("resources", {}) for w in workers]
    if (
        resources
        and held
        and not any(all(have.get(k, 0) >= v for k, v in resources.items()) for have in held)
    ):
        want = ",".join(f"{k}={v:g}" for k, v in resources.items())
        raise BenchError(
            f"--resources {want}: no worker of the cluster has them (start workers with "
            f"`dask worker --resources {want}`)"
        )


@contextmanager
def _slurm(client_type, cfg: dict, resources: dict[str, float] | None) -> Iterator[DaskExecutor]:
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise BenchError(
            "--cluster slurm needs dask-jobqueue: pip install 'tracer-bench[slurm]'"
        ) from None
    kwargs, jobs, threads, group_resources = slurm_cluster_kwargs(cfg)
    try:
        cluster = SLURMCluster(**kwargs)
    except ValueError as exc:  # e.g. no cores or memory here nor in jobqueue.yaml
        raise BenchError(f"--cluster slurm: {_one_line(exc)}") from None
    with cluster, client_type(cluster) as client:
        cluster.scale(jobs=jobs)
        yield DaskExecutor(client, threads, {**group_resources, **(resources or {})})
