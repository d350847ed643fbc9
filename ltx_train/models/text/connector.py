"""Text connector (LTX-2 style): frozen-encoder hidden states -> DiT conditioning tokens.

1. Read ALL encoder layers: ``hidden (B, L, n, D_in)``; each layer is RMS-normalised on its own
   (layers of one encoder differ in scale by orders of magnitude), then the n layers are
   concatenated and projected by ONE linear ``n * D_in -> width``.
2. Learnable register tokens, always valid: they give the DiT conditioning slots whatever the
   caption length, and something to attend to for the empty caption of classifier-free guidance.
   ``register_mode``:
   - ``"prepend"``: ``[R registers, L text]``; padding stays and is masked as keys.
     Output ``tokens (B, R + L, out_dim)``, ``mask (B, R + L)`` (registers True).
   - ``"replace"`` (LTX-2): padded text position j holds register ``j % R`` instead, so every
     token is valid. Output ``tokens (B, L, out_dim)``, ``mask`` all True: give the DiT
     ``text_mask=None`` and its attention runs the unmasked kernels (~1.8x faster on H100).
3. ``layers`` pre-norm self-attention blocks with 1D RoPE (positions 0, 1, ... along the output).
4. Final norm (and a linear to ``out_dim`` when it differs from the width).

LTX-2 uses one connector per modality (video, audio): instantiate two and set
``JointDiTConfig.separate_audio_text``. Presets: ``baseline`` and ``ltx23``, the latter with 4x the
parameters (LTX-2.3's larger connector); ``connector_preset(name, **overrides)``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from einops import rearrange

from ltx_train.models.dit.layers import RMSNorm, TransformerBlock
from ltx_train.models.dit.rope import rope_cos_sin


@dataclass
class TextConnectorConfig:
    in_dim: int = 384               # encoder hidden size (MiniLM: 384)
    in_layers: int = 7              # encoder hidden states read (n_layers + 1; MiniLM: 7)
    width: int = 256
    width_multiplier: float = 1.0   # effective width = width * width_multiplier (scale a preset)
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    registers: int = 128
    register_mode: str = "prepend"  # "prepend" | "replace" (see module doc)
    out_dim: int | None = None      # None: the effective width (then no output projection)
    rope_theta: float = 10000.0
    qk_norm: bool = True
    eps: float = 1e-6

    @property
    def model_width(self) -> int:
        w = int(round(self.width * self.width_multiplier))
        if w % self.heads or (w // self.heads) % 2:
            raise ValueError(f"connector width {w} must split into {self.heads} heads of even size")
        return w

    @property
    def output_dim(self) -> int:
        return self.out_dim or self.model_width


CONNECTOR_PRESETS: dict[str, TextConnectorConfig] = {
    # LTX-2: 2 blocks, 128 registers
    "baseline": TextConnectorConfig(width=256, width_multiplier=1.0, layers=2, heads=4, registers=128),
    # 2x width (4x per block) and one more block: 4.0x the baseline's parameters (tested)
    "ltx23": TextConnectorConfig(width=256, width_multiplier=2.0, layers=3, heads=8, mlp_ratio=3.0, registers=128),
}


def connector_preset(name: str, **overrides) -> TextConnectorConfig:
    if name not in CONNECTOR_PRESETS:
        raise KeyError(f"unknown connector preset {name!r}; choose from {sorted(CONNECTOR_PRESETS)}")
    return replace(CONNECTOR_PRESETS[name], **overrides)


class TextConnector(nn.Module):
    def __init__(self, cfg: TextConnectorConfig | None = None, **kwargs):
        super().__init__()
        cfg = cfg or TextConnectorConfig(**kwargs)
        self.cfg = cfg
        if cfg.register_mode not in ("prepend", "replace") or (cfg.register_mode == "replace" and cfg.registers < 1):
            raise ValueError(f"register_mode must be 'prepend' or 'replace' (with registers >= 1), got "
                             f"{cfg.register_mode!r} with {cfg.registers} registers")
        w = cfg.model_width
        self.in_norm = RMSNorm(cfg.in_dim, cfg.eps, affine=False)
        self.proj = nn.Linear(cfg.in_layers * cfg.in_dim, w)
        self.registers = nn.Parameter(torch.randn(cfg.registers, w) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(w, cfg.heads, cfg.mlp_ratio, cfg.qk_norm, cfg.eps) for _ in range(cfg.layers))
        self.norm = RMSNorm(w, cfg.eps)
        self.out = nn.Linear(w, cfg.out_dim) if cfg.out_dim and cfg.out_dim != w else nn.Identity()

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, L, in_layers, in_dim), mask (B, L) bool -> tokens (B, N, out_dim), mask (B, N):
        N = R + L when prepending registers, N = L when they replace padding."""
        b, length, n, _ = hidden.shape
        if n != self.cfg.in_layers:
            raise ValueError(f"connector expects {self.cfg.in_layers} encoder layers, got {n}")
        x = self.proj(rearrange(self.in_norm(hidden), "b l n d -> b l (n d)"))
        mask = torch.ones(b, length, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        regs = self.registers.to(x.dtype)
        if self.cfg.register_mode == "replace":
            tiled = regs[torch.arange(length, device=x.device) % regs.shape[0]]
            x = torch.where(mask[..., None], x, tiled)
            mask = torch.ones_like(mask)
            attn_mask = None
        else:
            x = torch.cat([regs.expand(b, -1, -1), x], dim=1)
            mask = torch.cat([torch.ones(b, regs.shape[0], dtype=torch.bool, device=x.device), mask], dim=1)
            attn_mask = mask
        pos = torch.arange(x.shape[1], device=x.device, dtype=torch.float32)[None, :, None].expand(b, -1, 1)
        rope = rope_cos_sin(pos, (self.cfg.model_width // self.cfg.heads,), self.cfg.rope_theta)
        for block in self.blocks:
            x = block(x, rope, attn_mask)
        return self.out(self.norm(x)), mask

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
