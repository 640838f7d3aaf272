"""Grids on Dask (DESIGN §7), through the CLI: a real `dask scheduler` and two `dask worker`
processes on loopback, one worker SIGKILLed in the middle of a group; the same grid on
`--cluster local:2`. Either way the grid completes with exactly the expected result files, each
valid, and every metric equal to the local run's.

The CLI runs as `python -c` around `benchmark.app.cli.main` with the tiny backbone and evaluation
configs (`run_grid` given TINY and SMALL, as tests/test_cli_errors.py does in-process): the
production CLI has no option for a backbone, and the workers get the configs from the client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import MARK, survivors, toy_rows, toy_task_file, write_atomic

from benchmark.app.runner import run_grid
from benchmark.metrics.registry import COST_METRICS
from benchmark.results.record import result_path
from leaderboard.validate import validate

TESTS = Path(__file__).parent
METHODS = ["filter", "retrain"]
SEEDS = [0, 1]
CLI = """
import sys
sys.path.insert(0, {tests!r})
from conftest import TINY
from conftest import SMALL
import benchmark.app.runner as runner
real = runner.run_grid
runner.run_grid = lambda *a, **k: real(*a, **{{**k, "backbone": TINY, "eval_cfg": SMALL}})
from benchmark.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The toy task file and its grid's metrics from a local run: {(method, seed): metrics}."""
    from conftest import SMALL, TINY

    base = tmp_path_factory.mktemp("dask_grid")
    data = write_atomic(base / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
    task_file = toy_task_file(base, data, evaluation=SMALL)  # SMALL is its protocol
    out = base / "local"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker below (and each process of `--jobs 2` here)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TRACER_BENCH_CACHE", str(base / "cache"))
            run_grid([str(task_file)], METHODS, SEEDS, out, progress=False, backbone=TINY,
                     eval_cfg=SMALL)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return task_file, _metrics(out)


def _metrics(out: Path) -> dict:
    return {
        (m, s, name): value
        for m in METHODS
        for s in SEEDS
        for name, value in json.loads(result_path(out, "toy-scary", m, s).read_text())[
            "metrics"
        ].items()
        if name not in COST_METRICS
    }


def _env(tmp_path: Path, cache: Path) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS.parent), str(TESTS)])
    return {**os.environ, "TRACER_BENCH_CACHE": str(cache), "PYTHONPATH": path,
            "TRACER_BENCH_THREADS": "1", "OMP_NUM_THREADS": "1", MARK: str(tmp_path)}  # fmt: skip


def _cli(task_file: Path, out: Path, env: dict, *executor: str) -> subprocess.Popen:
    argv = [
        "run",
        "--tasks",
        str(task_file),
        "--methods",
        *METHODS,
        "--seeds",
        *map(str, SEEDS),
        "--out",
        str(out),
        "--quiet",
        "--no-leaderboard",
        "--executor",
        "dask",
        *executor,
    ]
    return subprocess.Popen([sys.executable, "-c", CLI.format(tests=str(TESTS)), *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _check_grid(out: Path, task_file: Path, local: dict) -> None:
    expected = {result_path(out, "toy-scary", m, s) for m in METHODS for s in SEEDS}
    files = {p for p in out.rglob("*") if p.is_file()}
    evidence = {p.with_name(p.stem + ".evidence.parquet") for p in expected}
    assert files == expected | evidence  # no failure record, no temporary, nothing twice
    assert validate(out, [task_file]) == []
    assert _metrics(out) == local


def _stop(procs: list[subprocess.Popen], marker: Path) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()
    deadline = time.time() + 10
    while survivors(marker) and time.time() < deadline:
        time.sleep(0.2)
    assert survivors(marker) == [], "processes of the test are still alive"


def _listeners(marker: Path) -> list[str]:
    """The addresses that the test's live processes listen on (TCP, IPv4 and IPv6)."""
    inodes = set()
    for pid in survivors(marker):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                raw = bytes.fromhex(cols[1].split(":")[0])
                ip = ".".join(str(b) for b in raw[::-1]) if len(raw) == 4 else raw.hex()
                addresses.append(ip)
    return addresses


def _models(cache: Path) -> list[Path]:
    return sorted(cache.glob("models/*/*/config.json"))


def test_scheduler_and_workers_survive_a_killed_worker(tmp_path, grid):
    task_file, local = grid
    sched_file, out = tmp_path / "scheduler.json", tmp_path / "results"
    caches = [tmp_path / "cache-a", tmp_path / "cache-b"]  # no shared cache: each its own
    env = _env(tmp_path, tmp_path / "cache-client")
    procs = [_dask(tmp_path / "scheduler.log", env, "scheduler", "--host", "127.0.0.1", "--port",
                   "0", "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file",
                   str(sched_file))]  # fmt: skip
    try:
        workers = [
            _dask(cache.with_suffix(".log"), _env(tmp_path, cache), "worker", "--host", "127.0.0.1",
                  "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--nthreads", "1",
                  "--no-nanny", "--resources", "GPU=1", "--scheduler-file", str(sched_file))
            for cache in caches
        ]  # fmt: skip
        procs += workers
        _wait_for_workers(sched_file, 2)
        address = json.loads(sched_file.read_text())["address"]  # tcp://127.0.0.1:PORT
        # each group holds GPU=1 (a resource label here): one group at a time per worker
        client = _cli(task_file, out, env, "--scheduler", address, "--resources", "GPU=1")
        procs.append(client)

        deadline = time.time() + 120  # SIGKILL the first worker to have trained its base model
        while not any(_models(c) for c in caches):
            assert client.poll() is None and time.time() < deadline, client.communicate()
            time.sleep(0.05)
        victim = 0 if _models(caches[0]) else 1
        assert not out.exists() or not list(out.rglob("*.json"))  # its group is unfinished
        assert _listeners(tmp_path) and set(_listeners(tmp_path)) == {"127.0.0.1"}
        workers[victim].send_signal(signal.SIGKILL)

        stdout, stderr = client.communicate(timeout=300)
        assert client.returncode == 0, stderr
        assert "grid: 4 run, 0 already done, 0 failed" in stdout
        # the survivor finished both groups: the killed one's group was rescheduled onto it
        line = next(x for x in stdout.splitlines() if x.startswith("workers: "))
        assert line.count("tcp://127.0.0.1:") == 1 and line.endswith("(2 groups)"), line
        assert len(_models(caches[1 - victim])) == 2 and len(_models(caches[victim])) == 1
        _check_grid(out, task_file, local)
    finally:
        _stop(procs, tmp_path)


def _dask(log: Path, env: dict, *argv: str) -> subprocess.Popen:
    """A `dask` CLI subprocess (the one installed beside this Python), its output in `log`."""
    with log.open("w") as fh:
        cmd = [str(Path(sys.executable).with_name("dask")), *argv]
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)


def _wait_for_workers(sched_file: Path, n: int) -> None:
    deadline = time.time() + 60
    while not sched_file.exists():
        assert time.time() < deadline, "no scheduler file"
        time.sleep(0.1)
    from distributed import Client

    with Client(scheduler_file=str(sched_file), timeout="30s") as c:
        c.wait_for_workers(n, timeout=60)


def test_local_cluster_matches_the_local_run(tmp_path, grid):
    task_file, local = grid
    out = tmp_path / "results"
    client = _cli(task_file, out, _env(tmp_path, tmp_path / "cache"), "--cluster", "local:2")
    try:
        deadline = time.time() + 60  # the client and its two workers are up: where they listen
        while len(survivors(tmp_path)) < 3 or not _listeners(tmp_path):
            assert client.poll() is None and time.time() < deadline, client.communicate()
            time.sleep(0.1)
        assert set(_listeners(tmp_path)) == {"127.0.0.1"}
        stdout, stderr = client.communicate(timeout=300)
        assert client.returncode == 0, stderr
        assert "grid: 4 run, 0 already done, 0 failed" in stdout
        line = next(x for x in stdout.splitlines() if x.startswith("workers: "))
        assert line.count("tcp://127.0.0.1:") in (1, 2), line
        _check_grid(out, task_file, local)
    finally:
        _stop([client], tmp_path)


def test_slurm_config_makes_the_job_script(tmp_path):
    """No Slurm here: the config -> SLURMCluster arguments -> the job script dask-jobqueue
    would submit (the cluster itself is dask-jobqueue's)."""
    from dask_jobqueue.slurm import SLURMJob

    from benchmark.app.clusters import load_slurm_config, slurm_cluster_kwargs

    config = tmp_path / "slurm.toml"
    config.write_text(
        '[slurm]\nqueue = "gpu"\naccount = "my-lab"\ncores = 8\nmemory = "32GB"\n'
        'walltime = "04:00:00"\ngpus = 1\njobs = 4\njob_extra = ["--qos=normal"]\n'
        'prologue = ["source ~/venv/bin/activate"]\n'
    )
    kwargs, jobs, threads, resources = slurm_cluster_kwargs(load_slurm_config(config))
    assert (jobs, threads, resources) == (4, 8, {"group": 1.0, "GPU": 1.0})
    script = SLURMJob(scheduler="tcp://127.0.0.1:8786", name="w", **kwargs).job_script()
    for line in ("#SBATCH -p gpu", "#SBATCH -A my-lab", "#SBATCH --cpus-per-task=8",
                 "#SBATCH -t 04:00:00", "#SBATCH --qos=normal", "#SBATCH --gres=gpu:1",
                 "source ~/venv/bin/activate", "export TRACER_BENCH_DEVICE=cuda"):  # fmt: skip
        assert line in script.splitlines(), (line, script)
    assert "--resources group=1,GPU=1" in script and "--nthreads 8" in script
    cpu = slurm_cluster_kwargs({"cores": 8, "processes": 2})
    assert cpu[0]["worker_extra_args"] == ["--resources", "group=1"] and cpu[2] == 4
