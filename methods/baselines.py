"""The baselines every leaderboard needs (DESIGN §4). All but `retrain` and `filter` start from a
copy of the base model and act in the original token space."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.metrics.protocol import ORACLE
from benchmark.recommender.oracle import ORACLE_VERSION, train_oracle
from methods.base import MethodInputs, Unlearned, UnlearningMethod
from methods.common import (
    Examples,
    PerExample,
    RetainWindows,
    codes_tensor,
    npo_loss,
    optimise,
    reference_logprob,
    retain_loss,
    sid_logprob,
)
from methods.search import IntLogUniform, LogUniform, Uniform


@dataclass(frozen=True)
class NoConfig:
    pass


class Retrain(UnlearningMethod):
    """Oracle: the base model's recipe from scratch without the concept's interactions — its
    tokenizer's collaborative features from retain-only interactions (forget items keep
    content-based SIDs), forget items never targets (D_r only), early-stopped on retain-validation
    users. Cached like base models."""

    name, version, Config = ORACLE, ORACLE_VERSION, NoConfig
    changes_retain_sids = True  # its own tokenizer, fitted without the concept's interactions

    def unlearn(self, inputs: MethodInputs) -> Unlearned:
        o = train_oracle(inputs.task, inputs.backbone, inputs.seed, inputs.progress, inputs.report)
        return Unlearned(o.model, o.sids, log=o.log)


class Filter(UnlearningMethod):
    """Ban F at decoding time; no training. Hides, does not unlearn."""

    name, version, Config = "filter", "1.0", NoConfig

    def unlearn(self, inputs: MethodInputs) -> Unlearned:
        return Unlearned(copy.deepcopy(inputs.base), inputs.sids, banned=inputs.task.forget_mask)


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 100
    lr: float = 5e-4
    forget_batch: int = 64  # D_f examples per step
    retain_batch: int = 16  # D_r sequence windows per step (about 40 targets each)
    retain_weight: float = 1.0  # weight of the retain cross-entropy


@dataclass(frozen=True)
class NPOConfig(FinetuneConfig):
    beta: float = 0.5  # temperature


@dataclass(frozen=True)
class SimNPOConfig(FinetuneConfig):
    beta: float = 2.5  # temperature
    gamma: float = 0.0  # margin


@dataclass(frozen=True)
class GAConfig(FinetuneConfig):
    steps: int = 40
    retain_weight: float = 0.0


# the schedule every fine-tuning baseline searches; each adds its own loss weights
SCHEDULE = {"steps": IntLogUniform(25, 200), "lr": LogUniform(1e-4, 2e-3)}
RETAIN_WEIGHT = {"retain_weight": LogUniform(0.3, 3.0)}


class _Finetune(UnlearningMethod):
    """Copy the base model; optimise `forget_term` on D_f examples plus a retain loss on D_r."""

    Config = FinetuneConfig
    uses_forget = True
    needs_ref = False

    def forget_term(self, logits, y, logp, ref_logp) -> torch.Tensor:
        raise NotImplementedError

    def unlearn(self, inputs: MethodInputs) -> Unlearned:
        c, task = self.config, inputs.task
        model = copy.deepcopy(inputs.base)
        codes = codes_tensor(inputs.sids)
        d_f = Examples(task, task.d_forget)
        d_r = RetainWindows(task)
        ref_logp = PerExample(len(d_f), lambda i: [reference_logprob(inputs.base, codes, d_f, i)])

        def loss_fn(rng: np.random.Generator):
            parts = {}
            loss = torch.zeros(())
            if self.uses_forget:
                idx = d_f.sample(rng, c.forget_batch)
                memory, mask = d_f.encode(model, codes, idx)
                y = codes[torch.as_tensor(d_f.targets[idx])]
                logits = model.decode_targets(memory, mask, y)
                ref = ref_logp(idx)[0] if self.needs_ref else None
                forget = self.forget_term(logits, y, sid_logprob(logits, y), ref)
                loss = loss + forget
                parts["forget"] = forget.detach()
            if c.retain_weight > 0:
                keep = retain_loss(model, codes, d_r.sample(rng, c.retain_batch))
                loss = loss + c.retain_weight * keep
                parts["retain"] = keep.detach()
            return loss, parts

        log = optimise(model, c.steps, c.lr, loss_fn, inputs.seed, inputs.progress, self.name)
        return Unlearned(model, inputs.sids, log=log)


class RetainFinetune(_Finetune):
    """Continue training on D_r only."""

    name, version = "retain-ft", "1.0"
    uses_forget = False
    search_space = SCHEDULE


class GradientAscent(_Finetune):
    """Maximise the forget targets' loss (no retain term by default)."""

    name, version = "ga", "1.0"
    Config = GAConfig
    # fewer, smaller steps than the others: its defaults already collapse the model
    search_space = {"steps": IntLogUniform(5, 80), "lr": LogUniform(5e-5, 1e-3)}

    def forget_term(self, logits, y, logp, ref_logp):
        return logp.mean() / len(logits)


class GradDiff(_Finetune):
    """Ascent on D_f plus descent on D_r."""

    name, version = "graddiff", "1.0"
    search_space = {**SCHEDULE, **RETAIN_WEIGHT}

    def forget_term(self, logits, y, logp, ref_logp):
        return logp.mean() / len(logits)


class NPO(_Finetune):
    """Negative preference optimisation against the base model, plus the retain loss:
    -(2/beta) log sigmoid(-beta (log p - log p_ref)) on forget targets' SIDs."""

    name, version, Config = "npo", "1.0", NPOConfig
    needs_ref = True
    search_space = {**SCHEDULE, "beta": LogUniform(0.1, 2.0), **RETAIN_WEIGHT}

    def forget_term(self, logits, y, logp, ref_logp):
        return npo_loss(logp - ref_logp, self.config.beta)


class SimNPO(_Finetune):
    """Reference-free NPO with length normalisation and a margin:
    -(2/beta) log sigmoid(-(beta/|y|) log p - gamma)."""

    name, version, Config = "simnpo", "1.0", SimNPOConfig
    search_space = {**SCHEDULE, "beta": LogUniform(1.0, 5.0), "gamma": Uniform(0.0, 2.0)}

    def forget_term(self, logits, y, logp, ref_logp):
        b, g = self.config.beta, self.config.gamma
        return -(2.0 / b) * F.logsigmoid(-(b / len(logits)) * logp - g).mean()


class Suppress(_Finetune):
    """Push the forget targets' original SID tokens down directly (unlikelihood on every level,
    teacher-forced), shared tokens included, plus the retain loss: what TRACER argues against."""

    name, version = "suppress", "1.0"
    search_space = {**SCHEDULE, **RETAIN_WEIGHT}

    def forget_term(self, logits, y, logp, ref_logp):
        total = torch.zeros(())
        for lv, lg in enumerate(logits):
            p = torch.softmax(lg, -1).gather(1, y[:, lv : lv + 1])[:, 0]
            total = total - torch.log1p(-p.clamp(max=1 - 1e-6)).mean()
        return total / len(logits)
