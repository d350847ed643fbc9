"""`LTXModel`: the whole trainable model of the DiT stage, as one plain ``nn.Module``.

    text connector  (frozen-encoder hidden states -> conditioning tokens)
  + JointDiT        (one sequence of text, video and audio tokens -> flow velocities)
  + PhysicsHeads    (optional probes on an intermediate block)
  + image encoder   (optional: the first frame's spatial feature tokens for image-to-video; a small
                     trainable conv net, or a frozen CLIP vision tower read from a local folder)
  + latent normaliser (per-channel mean/std of the VAE latents, as buffers)

It is what ``DiTModule`` trains, what LoRA adapts (target names such as ``dit.blocks.3.attn.qkv``)
and what ``LTXVideoPipeline`` samples from; it knows nothing of Lightning, Hydra, ranks or batches.

    model = LTXModel(LTXModelConfig.from_dict({"dit": {...}, "connector": {...}}))
    tokens, mask = model.encode_text(hidden, hidden_mask)   # (B, L, n, D_in) encoder states
    out = model(x_v, x_a, sigma, tokens, mask, fps=fps)      # {"video": v_v, "audio": v_a}

With an image encoder (``image=ImageEncoderConfig(...)``) every call also takes image tokens, real or
"null" (a learned vector at every grid cell, for clips without a conditioning image and for image
guidance), so the sequence has the same length whether or not an image is given:

    image = model.image_tokens(first_frames, keep)           # keep (B,) bool: False -> null tokens
    out = model(x_v, x_a, sigma, tokens, mask, image=image, cond_mask=cond_mask, fps=fps)
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
from ltx_train.models.image.encoder import ImageEncoderConfig, build_image_encoder
from ltx_train.models.text.connector import TextConnector, TextConnectorConfig


@dataclass
class LTXModelConfig:
    dit: JointDiTConfig = field(default_factory=JointDiTConfig)
    connector: TextConnectorConfig = field(default_factory=TextConnectorConfig)
    physics: PhysicsHeadsConfig | None = None   # None: no physics heads
    physics_block: int = -2                     # DiT block whose output the heads read (negative: from the end)
    image: ImageEncoderConfig | None = None     # None: no spatial image features (i2v by the latent frame alone)

    def __post_init__(self):
        if self.image is None and self.dit.image_dim:
            raise ValueError(f"dit.image_dim={self.dit.image_dim} needs an image encoder (model.image)")
        if self.image is not None and self.image.kind == "conv":   # a CLIP tower's width is known once loaded
            if self.dit.image_dim == 0:
                self.dit = dataclasses.replace(self.dit, image_dim=self.image.width)
            elif self.dit.image_dim != self.image.width:
                raise ValueError(f"dit.image_dim={self.dit.image_dim} must equal the image encoder's width "
                                 f"{self.image.width}")
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
        self.physics = PhysicsHeads(cfg.physics) if cfg.physics is not None else None
        self.image_encoder = self.image_null = None
        if cfg.image is not None:
            self.image_encoder = build_image_encoder(cfg.image)
            width = self.image_encoder.out_dim
            if cfg.dit.image_dim not in (0, width):
                raise ValueError(f"dit.image_dim={cfg.dit.image_dim}, but the image encoder gives {width}-wide tokens")
            if cfg.dit.image_dim == 0:  # CLIP: the width comes from the loaded tower
                cfg.dit = dataclasses.replace(cfg.dit, image_dim=width)
            # the "no image" input: one learned vector at every grid cell (classifier-free image guidance)
            self.image_null = nn.Parameter(torch.zeros(width))
        self.dit = JointDiT(cfg.dit)
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

    # ------------------------------------------------------------------ image
    def image_grid(self, height: int, width: int) -> tuple[int, int]:
        """(gh, gw) of the image tokens of an ``height`` x ``width`` image (no encoder run)."""
        if self.image_encoder is None:
            raise ValueError("this model has no image encoder")
        return self.image_encoder.grid_for(height, width)

    def image_tokens(self, images: torch.Tensor | None, keep: torch.Tensor | None = None, *,
                     batch: int | None = None, size: tuple[int, int] | None = None
                     ) -> tuple[torch.Tensor, tuple[int, int]] | None:
        """Conditioning images (B, 3, H, W) in [-1, 1] -> (tokens (B, gh*gw, image_dim), (gh, gw)) for
        ``forward(image=...)``; rows where ``keep`` (B,) is False, or all rows when ``images`` is None
        (then give ``batch`` and the pixel ``size`` (H, W)), are the null tokens. None without an encoder."""
        if self.image_encoder is None:
            return None
        if images is None:
            if batch is None or size is None:
                raise ValueError("image_tokens(None) needs batch= and size=(H, W) for the null tokens")
            grid = self.image_grid(*size)
            null = self.image_null.reshape(1, 1, -1).expand(batch, grid[0] * grid[1], -1)
            return null, grid
        tokens, grid = self.image_encoder(images.to(self.image_null.device))
        tokens = tokens.to(self.image_null.dtype)
        if keep is not None:
            tokens = torch.where(keep.to(tokens.device).bool()[:, None, None], tokens, self.image_null)
        return tokens, tuple(grid)

    # ------------------------------------------------------------------ denoiser
    def forward(self, video: torch.Tensor, audio: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor | None = None, *, cond_mask: torch.Tensor | None = None,
                fps: float | torch.Tensor | None = None, physics: bool = False,
                image: tuple[torch.Tensor, tuple[int, int]] | None = None) -> dict:
        """Normalised noisy latents video (B, Cv, Tv, Hv, Wv), audio (B, Ca, Ta), flow time sigma (B,)
        and connector tokens -> {"video", "audio"} velocities; with ``physics=True`` (and heads) also
        "physics": the heads' predictions from block ``physics_block``. ``image``: what
        ``image_tokens`` returns (required with an image encoder, refused without)."""
        if (image is None) != (self.image_encoder is None):
            raise ValueError("this model reads image tokens: pass image=model.image_tokens(...) (null tokens "
                             "for no image)" if image is None else "image tokens given, but the model has no "
                             "image encoder")
        want_heads = physics and self.physics is not None
        tokens, grid = image if image is not None else (None, None)
        out = self.dit(video, audio, sigma, text, text_mask, cond_mask=cond_mask, fps=fps, image=tokens,
                       image_grid=grid, return_hidden_at=self.cfg.physics_block if want_heads else None)
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
