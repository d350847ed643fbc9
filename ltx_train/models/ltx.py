"""`LTXModel`: the whole trainable model of the DiT stage, as one plain ``nn.Module``.

    text connector  (frozen-encoder hidden states -> conditioning tokens)
  + JointDiT        (one sequence of text, video and audio tokens -> flow velocities)
  + PhysicsHeads    (optional probes on an intermediate block)
  + latent normaliser (per-channel mean/std of the VAE latents, as buffers)

It is what ``DiTModule`` trains, what LoRA adapts (target names such as ``dit.blocks.3.attn.qkv``)
and what ``LTXVideoPipeline`` samples from; it knows nothing of Lightning, Hydra, ranks or batches.

    model = LTXModel(LTXModelConfig.from_dict({"dit": {...}, "connector": {...}}))
    tokens, mask = model.encode_text(hidden, hidden_mask)   # (B, L, n, D_in) encoder states
    out = model(x_v, x_a, sigma, tokens, mask, fps=fps)      # {"video": v_v, "audio": v_a}
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ltx_train.config import to_dataclass
from ltx_train.models.dit.dit import JointDiT, JointDiTConfig
from ltx_train.models.dit.physics_heads import PhysicsHeads, PhysicsHeadsConfig
from ltx_train.models.text.connector import TextConnector, TextConnectorConfig


@dataclass
class LTXModelConfig:
    dit: JointDiTConfig = field(default_factory=JointDiTConfig)
    connector: TextConnectorConfig = field(default_factory=TextConnectorConfig)
    physics: PhysicsHeadsConfig | None = None   # None: no physics heads
    physics_block: int = -2                     # DiT block whose output the heads read (negative: from the end)

    def __post_init__(self):
        if self.dit.text_dim != self.connector.output_dim:
            raise ValueError(f"dit.text_dim={self.dit.text_dim} must equal the connector's output width "
                             f"{self.connector.output_dim}")
        if self.physics is not None and self.physics.width != self.dit.width:
            raise ValueError(f"physics.width={self.physics.width} must equal dit.width={self.dit.width}")

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (tuples as lists) that ``from_dict`` reads back."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "model") -> LTXModelConfig:
        return to_dataclass(cls, d, path)


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


class LTXModel(nn.Module):
    def __init__(self, cfg: LTXModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or LTXModelConfig()
        self.connector = TextConnector(cfg.connector)
        self.dit = JointDiT(cfg.dit)
        self.physics = PhysicsHeads(cfg.physics) if cfg.physics is not None else None
        # latent statistics (row 0 mean, row 1 std), measured on training data and saved with the weights;
        # identity until set, so an untrained model is still usable
        self.register_buffer("video_stats", torch.stack([torch.zeros(cfg.dit.video_channels),
                                                         torch.ones(cfg.dit.video_channels)]))
        self.register_buffer("audio_stats", torch.stack([torch.zeros(cfg.dit.audio_channels),
                                                         torch.ones(cfg.dit.audio_channels)]))

    @property
    def config(self) -> LTXModelConfig:
        return self.cfg

    # ------------------------------------------------------------------ text
    def encode_text(self, hidden: torch.Tensor, mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frozen-encoder states (B, L, n_layers + 1, D_in) and mask (B, L) -> conditioning tokens
        (B, N, text_dim) and their key mask, None when every token is valid (the unmasked attention
        kernels are faster)."""
        tokens, tmask = self.connector(hidden, mask)
        return tokens, (None if self.cfg.connector.register_mode == "replace" else tmask)

    # ------------------------------------------------------------------ denoiser
    def forward(self, video: torch.Tensor, audio: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor | None = None, *, cond_mask: torch.Tensor | None = None,
                fps: float | torch.Tensor | None = None, physics: bool = False) -> dict:
        """Normalised noisy latents video (B, Cv, Tv, Hv, Wv), audio (B, Ca, Ta), flow time sigma (B,)
        and connector tokens -> {"video", "audio"} velocities; with ``physics=True`` (and heads) also
        "physics": the heads' predictions from block ``physics_block``."""
        want_heads = physics and self.physics is not None
        out = self.dit(video, audio, sigma, text, text_mask, cond_mask=cond_mask, fps=fps,
                       return_hidden_at=self.cfg.physics_block if want_heads else None)
        if want_heads:
            out["physics"] = self.physics(out.pop("hidden"))
        return out

    # ------------------------------------------------------------------ latent normaliser
    def set_latent_stats(self, video_stats: torch.Tensor, audio_stats: torch.Tensor) -> None:
        """(2, Cv) and (2, Ca): per-channel mean and std of the VAE latents."""
        with torch.no_grad():
            self.video_stats.copy_(video_stats)
            self.audio_stats.copy_(audio_stats)

    def normalize(self, z_v: torch.Tensor, z_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mv, sv = self.video_stats[:, :, None, None, None].to(z_v.dtype)
        ma, sa = self.audio_stats[:, :, None].to(z_a.dtype)
        return (z_v - mv) / sv, (z_a - ma) / sa

    def denormalize(self, z_v: torch.Tensor, z_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mv, sv = self.video_stats[:, :, None, None, None].to(z_v.dtype)
        ma, sa = self.audio_stats[:, :, None].to(z_a.dtype)
        return z_v * sv + mv, z_a * sa + ma

    def num_tokens(self, z_v: torch.Tensor, z_a: torch.Tensor) -> int:
        """Video + audio tokens of the joint sequence (what the timestep shift is scaled by)."""
        pt, ph, pw = self.cfg.dit.patch_size
        _, _, t, h, w = z_v.shape
        return (t // pt) * (h // ph) * (w // pw) + z_a.shape[-1]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ files
    @classmethod
    def from_pretrained(cls, path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> LTXModel:
        """Load ``<dir>/config.json`` + ``<dir>/model.safetensors`` (a pipeline's ``model/`` folder, or
        the pipeline folder itself)."""
        from ltx_train.pretrained import load_component
        return load_component(path, "model", device=device, dtype=dtype)

    def save_pretrained(self, path, dtype: torch.dtype | None = None) -> None:
        from ltx_train.pretrained import save_component
        save_component(self, path, dtype=dtype)
