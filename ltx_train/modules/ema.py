"""Exponential moving average of the trainable weights, as a submodule (saved, loaded and moved with
the LightningModule).

Only parameters that require grad are averaged: a frozen DiT under connector-only training, or a
frozen base under LoRA, costs no second copy. Averages are buffers named after their parameters
(``dit.blocks.0.attn.qkv.weight`` -> ``dit__blocks__0__attn__qkv__weight``).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn


def _local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (a view: in-place ops write the DTensor), any other tensor itself."""
    return t.to_local() if hasattr(t, "to_local") else t


def _key(name: str) -> str:
    return name.replace(".", "__")


def _zero3(params: list[torch.Tensor]) -> bool:
    """DeepSpeed ZeRO-3 partitions parameters in place: each holds an empty tensor and its rank's slice."""
    return any(hasattr(p, "ds_id") for p in params)


def _chunks(pairs: list, numel: int = 1 << 26):
    """``pairs`` (parameter, average) in runs of at most ~``numel`` elements: under ZeRO-3 one run is
    gathered at a time, so the whole model is never materialised on a rank at once."""
    run, size = [], 0
    for pair in pairs:
        run.append(pair)
        size += pair[1].numel()
        if size >= numel:
            yield run
            run, size = [], 0
    if run:
        yield run


@contextmanager
def zero3_gathered(params: list[torch.Tensor], modifier_rank: int | None = None):
    """ZeRO-3: the full parameters inside the context (all-gathered; with ``modifier_rank`` that rank's
    writes are re-partitioned on exit); any other parameters: as they are."""
    if not _zero3(params):
        yield
        return
    import deepspeed
    with deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank):
        yield


class EMA(nn.Module):
    """``avg = decay * avg + (1 - decay) * param``, with the decay warmed up as
    ``min(decay, (1 + n) / (10 + n))`` so early averages are not dominated by the initialisation."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        for n, p in model.named_parameters():
            if p.requires_grad:
                self.register_buffer(_key(n), p.detach().clone())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._count: int | None = None

    def averages(self) -> list[torch.Tensor]:
        return [getattr(self, _key(n)) for n in self.names]

    def _params(self, model: nn.Module) -> list[nn.Parameter]:
        params = dict(model.named_parameters())
        missing = [n for n in self.names if n not in params]
        if missing:
            raise KeyError(f"EMA: the model has no parameter {missing[0]!r}")
        return [params[n] for n in self.names]

    @torch.no_grad()
    def update(self, model: nn.Module, weight: torch.Tensor | None = None) -> None:
        """One update; ``weight`` (a 0-dim device tensor, 0 or 1) scales it, so that an update after a
        skipped optimiser step moves nothing without the host reading the flag. The count (and with it the
        decay's warm-up) advances either way, as the LR schedule does."""
        # the count is mirrored on the host so that an update never waits for the GPU
        if self._count is None:
            self._count = int(self.num_updates)      # once, after construction or a state-dict load
        n = self._count
        d = min(self.decay, (1 + n) / (10 + n))
        pairs = list(zip(self._params(model), self.averages()))
        # ZeRO-3: the averages are whole on every rank, updated from the gathered parameters, a run at a time
        for run in (_chunks(pairs) if _zero3([p for p, _ in pairs]) else [pairs]):
            with zero3_gathered([p for p, _ in run]):
                # sharded (FSDP2) averages and weights: the local shards, updated in place
                dst = [_local(a) for _, a in run]
                src = [_local(p.detach()).to(a.dtype) for (p, _), a in zip(run, dst)]
                if dst:
                    w = 1.0 - d if weight is None else (1.0 - d) * weight.to(dst[0].device)
                    torch._foreach_lerp_(dst, src, w)
        self._count = n + 1
        self.num_updates.fill_(self._count)

    def _load_from_state_dict(self, *args, **kwargs):
        self._count = None
        super()._load_from_state_dict(*args, **kwargs)

    def state_for(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """``model.state_dict()`` with the averaged weights in place of the trained ones."""
        state = dict(model.state_dict())
        state.update({n: a for n, a in zip(self.names, self.averages())})
        return state

    @staticmethod
    def averages_from_state_dict(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        """The averages stored under ``prefix`` in a LightningModule's state dict, by parameter name."""
        return {k[len(prefix):].replace("__", "."): v for k, v in state.items()
                if k.startswith(prefix) and k != prefix + "num_updates"}

    @contextmanager
    def swapped_into(self, model: nn.Module):
        """Temporarily load the averaged weights into ``model`` (for validation or sampling)."""
        params = self._params(model)
        # ZeRO-3: each rank backs up its own partition, and the averages go in through a gather
        partitioned = _zero3(params)
        backup = [(p.ds_tensor if partitioned else p).detach().clone() for p in params]
        with torch.no_grad():
            for run in (_chunks(list(zip(params, self.averages()))) if partitioned else [zip(params, self.averages())]):
                run = list(run)
                with zero3_gathered([p for p, _ in run], modifier_rank=0):
                    for p, a in run:
                        p.copy_(a)
        try:
            yield model
        finally:
            with torch.no_grad():
                for p, b in zip(params, backup):
                    (p.ds_tensor if partitioned else p).copy_(b)
