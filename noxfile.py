"""nox sessions: tests, lint, quickstart, perf. Each installs the local CPU torch wheel first
(a plain `torch` requirement would pull a multi-GB CUDA build) and the RecBole wheel's ML-100k."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

TORCH = "torch==2.13.0"
RECBOLE = "recbole==1.2.1"


def install(session: nox.Session, extras: str = "dev") -> None:
    session.install(TORCH)
    session.install("--no-deps", RECBOLE)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    install(session, "dev,text")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def quickstart(session: nox.Session) -> None:
    """The quick suite (ML-100k Horror, every method, seed 0) into ./results, then its
    leaderboard; extra arguments go to `tracer-bench run` (e.g. `-- --jobs 2`)."""
    install(session, "dev,text")
    session.run("tracer-bench", "run", "--suite", "quick", "--out", "results", *session.posargs)


@nox.session
def perf(session: nox.Session) -> None:
    """Training and decoding speed, FLOP/s and memory against a Hugging Face T5 (one table)."""
    install(session, "dev,text,perf")
    session.run("tracer-bench", "perf", *session.posargs)
