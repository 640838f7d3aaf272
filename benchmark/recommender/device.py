"""Where tensors live. CPU by default (the benchmark's reference numbers are CPU numbers); setting
TRACER_BENCH_DEVICE (e.g. "cuda") makes it torch's default device for the whole harness, which
creates every tensor through factories that follow it (torch.as_tensor, torch.zeros, modules).
Item features and semantic IDs are always computed on the CPU."""

from __future__ import annotations

import functools
import os

import torch


def configure_device(name: str | None = None) -> str:
    """Make `name` (or $TRACER_BENCH_DEVICE) torch's default device; returns the device used."""
    name = name or os.environ.get("TRACER_BENCH_DEVICE") or "cpu"
    if name != "cpu":  # leave the CPU path untouched (a default-device mode costs per op)
        torch.set_default_device(name)
    return name


def on_cpu(fn):
    """Run `fn` with the CPU as the default device, whatever the harness uses."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.device("cpu"):
            return fn(*args, **kwargs)

    return wrapper
