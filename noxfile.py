"""nox sessions: tests, lint, quickstart, perf. Each but lint installs the local CPU torch wheel
first (a plain `torch` requirement would pull a multi-GB CUDA build) and the RecBole wheel's
ML-100k; lint (ruff, mypy) needs neither."""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

TORCH = "torch==2.13.0"
RECBOLE = "recbole==1.2.1"
QUICK_BOARD = "reports/cpu-protocol2-horror"  # its checkpoints/ hold the quick suite's two models


def install(session: nox.Session, extras: str = "dev") -> None:
    session.install(TORCH)
    session.install("--no-deps", RECBOLE)
    session.install("-e", f".[{extras}]")


def ensure_chromium(session: nox.Session) -> None:
    """The leaderboard page's browser test needs Chromium and ChromeDriver: on Debian, as root
    (or with password-less sudo), install them; elsewhere stop with a one-line instruction."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    sudo = (
        not root
        and shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    )
    if (root or sudo) and shutil.which("apt-get"):
        prefix = [] if root else ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run(*prefix, "apt-get", "update", "-qq", external=True, env=env)
        session.run(
            *prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium",
            "chromium-driver", external=True, env=env,
        )  # fmt: skip
        return
    session.error(
        "the page test needs Chromium and ChromeDriver on PATH: "
        "`sudo apt-get install chromium chromium-driver` (Debian/Ubuntu) or your system's packages"
    )


@nox.session
def tests(session: nox.Session) -> None:
    ensure_chromium(session)
    install(session, "dev,text,slurm")  # slurm: the Slurm job-script test needs dask-jobqueue
    session.run("pytest", *session.posargs)


# The typed packages that mypy reaches from the checked modules ([tool.mypy] in pyproject.toml).
# The others (pandas, tabulate, pyarrow, datasets, tqdm) ship no types and read as Any whether
# installed or not; torch types only modules mypy follows silently, so lint needs no torch wheel.
MYPY_DEPS = (
    "numpy", "matplotlib", "cryptography", "platformdirs", "huggingface-hub", "safetensors",
)  # fmt: skip


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (the linter and the formatter's check), then mypy on the torch-free core packages
    (its configuration: pyproject.toml)."""
    session.install("ruff", "mypy==2.4.1", *MYPY_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    cache = os.path.join(session.virtualenv.location, "mypy_cache")  # not the dev venv's cache
    session.run("mypy", "--cache-dir", cache)


@nox.session
def quickstart(session: nox.Session) -> None:
    """The quick suite (ML-100k Horror, every method, seed 0) into ./results on the Horror
    board's own base model and oracle (no training), then its leaderboard; extra arguments go
    to `tracer-bench run` (e.g. `-- --jobs 2`; `-- --train-models` trains what is missing)."""
    install(session, "dev,text")
    board = ("--checkpoints", QUICK_BOARD)
    session.run("tracer-bench", "run", "--suite", "quick", "--out", "results", *board,
                *session.posargs)  # fmt: skip


@nox.session
def perf(session: nox.Session) -> None:
    """Training and decoding speed, FLOP/s and memory against a Hugging Face T5 (one table)."""
    install(session, "dev,text,perf")
    session.run("tracer-bench", "perf", *session.posargs)
