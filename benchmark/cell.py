"""One (task, method, seed) cell: base model -> method -> metrics, with the cost measured."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.backbone import BackboneConfig, get_backbone
from benchmark.evidence import evidence_frame
from benchmark.features import item_features
from benchmark.unlearning_metrics import (
    EvalConfig,
    Reference,
    ServedModel,
    evaluate_unlearning,
    make_reference,
    mean_stat,
    relearn,
    served_lists,
)
from methods.base import MethodInputs, Unlearned
from methods.registry import get_method
from tasks.prepare import PreparedTask


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def _rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class CellContext:
    """What cells of one (task, seed) share: the base model, the oracle and the reference."""

    task: PreparedTask
    seed: int
    backbone_cfg: BackboneConfig
    eval_cfg: EvalConfig
    progress: bool = True
    _cache: dict = field(default_factory=dict)

    def inputs(self) -> MethodInputs:
        bb = self.base()
        return MethodInputs(
            bb.model, bb.sids, self.task, self.backbone_cfg, self.seed, self.progress
        )

    def base(self):
        if "base" not in self._cache:
            self._cache["base"], _ = get_backbone(
                self.task, self.backbone_cfg, self.seed, self.progress
            )
        return self._cache["base"]

    def reference(self) -> Reference:
        if "ref" not in self._cache:
            bb = self.base()
            feats = item_features(self.task, self.backbone_cfg.features)
            self._cache["ref"] = make_reference(
                self.task, ServedModel(bb.model, bb.sids), feats, self.eval_cfg
            )
        return self._cache["ref"]

    def oracle(self) -> tuple[Unlearned, dict]:
        """The retrain oracle and its relearning recall under the shared budget."""
        if "oracle" not in self._cache:
            unl = get_method("retrain")().unlearn(self.inputs())
            sm = ServedModel(unl.model, unl.sids)
            c = self.eval_cfg
            model = relearn(self.task, sm, c.relearn_steps, c.relearn_sample, c.relearn_lr, c.seed)
            ref = self.reference()
            lists = served_lists(
                self.task, ref.pools, ServedModel(model, unl.sids), max(c.ks), c.beam
            )
            targets = self.task.seq_items[ref.pools.forget_set_pos]
            hit = lists.forget_set_topk == targets[:, None]
            rng = np.random.default_rng(c.seed)
            relearned = {
                f"relearn_oracle_forget_recall@{k}": mean_stat(hit[:, :k].any(1).astype(float), rng)
                for k in c.ks
            }
            self._cache["oracle"] = (unl, relearned)
        return self._cache["oracle"]


def run_cell(ctx: CellContext, method_name: str, config_overrides: dict | None = None) -> dict:
    """Unlearn with `method_name` and evaluate.
    Returns {'method', 'unlearned', 'metrics', 'cost', 'evidence' (a DataFrame)}."""
    method = get_method(method_name)(**(config_overrides or {}))
    inputs = ctx.inputs()
    with PeakRSS() as mem:
        start = time.perf_counter()
        unl = method.unlearn(inputs)
        seconds = time.perf_counter() - start
    if method_name == "retrain" and not unl.log.get("reused_cached_oracle", False):
        retrain_seconds = seconds
    else:
        oracle, _ = ctx.oracle()
        retrain_seconds = oracle.log.get("seconds", float("nan"))
    if method_name == "retrain":
        seconds = retrain_seconds  # a cached oracle costs what its training cost
    evidence: dict = {}
    metrics = evaluate_unlearning(
        ctx.task,
        ctx.reference(),
        ServedModel(unl.model, unl.sids, unl.banned),
        ctx.eval_cfg,
        evidence,
    )
    metrics.update(ctx.oracle()[1])
    cost = {
        "unlearn_seconds": seconds,
        "peak_memory_mib": mem.peak,
        "memory_increase_mib": mem.peak - mem.base,
        "speedup_over_retrain": retrain_seconds / seconds if seconds > 0 else float("nan"),
        "retrain_seconds": retrain_seconds,
    }
    for name in ("unlearn_seconds", "peak_memory_mib", "speedup_over_retrain"):
        metrics[name] = {
            "value": float(cost[name]),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "n": 1,
        }
    return {
        "method": method,
        "unlearned": unl,
        "metrics": metrics,
        "cost": cost,
        "evidence": evidence_frame(evidence),
    }
