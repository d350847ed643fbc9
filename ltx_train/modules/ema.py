"""Exponential moving average of weights, as a submodule (so it is saved, loaded and moved with the module)."""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
import torch.nn as nn


class EMA(nn.Module):
    """Shadow copy of ``model``'s parameters: ``shadow = decay * shadow + (1 - decay) * param``.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` so early averages are not dominated
    by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._count: int | None = None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # the count is mirrored on the host so that an update never waits for the GPU
        if self._count is None:
            self._count = int(self.num_updates)      # once, after construction or a state-dict load
        n = self._count
        d = min(self.decay, (1 + n) / (10 + n))
        src = [p.detach() for p in model.parameters()]
        dst = list(self.shadow.parameters())
        torch._foreach_lerp_(dst, [s.to(t.dtype) for s, t in zip(src, dst)], 1.0 - d)
        self._count = n + 1
        self.num_updates.fill_(self._count)

    def _load_from_state_dict(self, *args, **kwargs):
        self._count = None
        super()._load_from_state_dict(*args, **kwargs)

    @contextmanager
    def swapped_into(self, model: nn.Module):
        """Temporarily load the averaged weights into ``model`` (for validation or sampling)."""
        backup = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():
            for p, s in zip(model.parameters(), self.shadow.parameters()):
                p.copy_(s)
        try:
            yield model
        finally:
            with torch.no_grad():
                for p, b in zip(model.parameters(), backup):
                    p.copy_(b)
