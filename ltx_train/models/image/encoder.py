"""Image encoders for image-to-video conditioning: images -> a grid of feature tokens.

Both encoders take images ``(B, 3, H, W)`` in [-1, 1] (the video range) and return
``(tokens (B, gh * gw, out_dim), (gh, gw))``, tokens in row-major order (row 0 left to right, then
row 1, ...), so the DiT can place each token at its spatial position.

- ``"conv"``: a small trainable conv net. One stage per entry of ``channels``: a stride-2 3x3 conv,
  GroupNorm + SiLU, then one residual 3x3 conv block; a 1x1 conv to ``width``. The grid is the
  stack's own output, ``ceil(H / 2^len(channels))`` by ``ceil(W / 2^len(channels))`` (8x8 for a
  64x64 image at the default 3 stages), or ``grid`` when set (adaptive average pooling).
- ``"clip"``: a frozen Hugging Face CLIP vision tower read from a local folder
  (``local_files_only``). It returns the PATCH tokens of one hidden state (``layer``; -2, the
  penultimate, by default), not the pooled vector: the spatial map is what conditioning needs.
  Preprocessing runs on the tensor: [-1, 1] -> [0, 1], a bicubic (antialiased) resize to the
  model's ``image_size`` square (no crop: a non-square frame is stretched, so all of it is seen),
  then the CLIP mean / std (from ``preprocessor_config.json`` in the folder when it has them).
  The grid is ``image_size // patch_size`` on each side; ``out_dim`` is the model's hidden size.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

ENCODER_KINDS = ("conv", "clip")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_MODEL_TYPES = ("clip_vision_model", "clip")  # a vision tower alone, or a full CLIP (its vision half is read)


class ImageEncoderError(ValueError):
    """An image encoder that cannot be built as configured; the message names the path or key."""


@dataclass
class ImageEncoderConfig:
    kind: str = "conv"                      # "conv" | "clip" (see module doc)
    clip_path: str | None = None            # clip: local folder of a Hugging Face CLIP vision model
    layer: int = -2                         # clip: hidden state giving the patch tokens (negative: from the end)
    width: int = 256                        # conv: token width
    channels: tuple[int, ...] = (32, 64, 128)  # conv: stage widths (each stage halves H and W)
    grid: tuple[int, int] | None = None     # conv: output grid (gh, gw); None: ceil(H / 2^len(channels)), ...

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if self.grid is not None:
            self.grid = tuple(self.grid)
            if len(self.grid) != 2 or min(self.grid) < 1:
                raise ImageEncoderError(f"image encoder grid must be two positive sizes (gh, gw), got {self.grid}")
        if self.kind not in ENCODER_KINDS:
            raise ImageEncoderError(f"image encoder kind must be one of {ENCODER_KINDS}, got {self.kind!r}")

    @property
    def out_dim(self) -> int:
        """Token width. Known from the config only for ``"conv"``: a CLIP tower's width is its hidden
        size, read when it loads (use the module's ``out_dim``)."""
        if self.kind != "conv":
            raise ImageEncoderError(f"the out_dim of a {self.kind!r} image encoder is known after loading: "
                                    f"read it from the built module")
        return self.width


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"image encoder expects images (B, 3, H, W), got shape {tuple(images.shape)}")


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(F.silu(self.norm(x)))


class ConvImageEncoder(nn.Module):
    """``forward(images (B, 3, H, W) in [-1, 1]) -> (tokens (B, gh * gw, width), (gh, gw))``. Trainable."""

    def __init__(self, cfg: ImageEncoderConfig | None = None, **kwargs):
        super().__init__()
        cfg = cfg or ImageEncoderConfig(**kwargs)
        self.cfg = cfg
        stages: list[nn.Module] = []
        c_in = 3
        for c in cfg.channels:
            stages += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), _norm(c), nn.SiLU(), _ResBlock(c)]
            c_in = c
        self.stages = nn.Sequential(*stages)
        self.out = nn.Conv2d(c_in, cfg.width, 1)

    @property
    def out_dim(self) -> int:
        return self.cfg.width

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """(gh, gw) that ``forward`` gives for an ``height`` x ``width`` image, without running it."""
        if self.cfg.grid is not None:
            return tuple(self.cfg.grid)
        for _ in self.cfg.channels:   # each stage: a stride-2, padding-1, 3x3 conv
            height, width = (height + 1) // 2, (width + 1) // 2
        return height, width

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        _check_images(images)
        x = self.out(self.stages(images))
        if self.cfg.grid is not None:
            x = F.adaptive_avg_pool2d(x, self.cfg.grid)
        return rearrange(x, "b c h w -> b (h w) c"), (x.shape[2], x.shape[3])

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _read_model_type(path: Path) -> str:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ImageEncoderError(f"image encoder clip_path {path}: no config.json (not a Hugging Face model folder)")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type not in CLIP_MODEL_TYPES:
        raise ImageEncoderError(f"image encoder clip_path {path}: config.json has model_type {model_type!r}; "
                                f"kind 'clip' needs a CLIP vision model (model_type one of {CLIP_MODEL_TYPES})")
    return model_type


def _read_mean_std(path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``image_mean`` / ``image_std`` of the folder's preprocessor_config.json; the CLIP values if absent."""
    pre_file = path / "preprocessor_config.json"
    pre = json.loads(pre_file.read_text()) if pre_file.is_file() else {}
    mean, std = tuple(pre.get("image_mean", CLIP_MEAN)), tuple(pre.get("image_std", CLIP_STD))
    if len(mean) != 3 or len(std) != 3:
        raise ImageEncoderError(f"{pre_file}: image_mean and image_std must have 3 values, got {mean} and {std}")
    return mean, std


class CLIPImageEncoder(nn.Module):
    """``forward(images (B, 3, H, W) in [-1, 1]) -> (tokens (B, gh * gw, hidden_size), (gh, gw))``:
    the patch tokens (CLS dropped) of hidden state ``layer`` of a CLIP vision tower.

    Frozen: parameters never require grad, the tower stays in eval mode even under ``.train()``,
    and encoding runs under ``no_grad``.
    """

    def __init__(self, path: str | None, layer: int = -2):
        super().__init__()
        from transformers import CLIPVisionModel
        from transformers.utils import logging as hf_logging

        if path is None:
            raise ImageEncoderError("image encoder kind 'clip' needs clip_path (a local CLIP vision model folder)")
        folder = Path(path)
        if not folder.is_dir():
            raise ImageEncoderError(f"image encoder clip_path {path}: no such folder")
        _read_model_type(folder)
        mean, std = _read_mean_std(folder)

        hf_logging.disable_progress_bar()
        # the per-load report lists a full CLIP's text tower as unexpected keys (expected: only its
        # vision half is read); it is silenced and missing vision weights are checked below instead
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            model, info = CLIPVisionModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
        finally:
            hf_logging.set_verbosity(verbosity)
        if info["missing_keys"]:
            raise ImageEncoderError(f"image encoder clip_path {path}: the checkpoint lacks vision weights "
                                    f"{sorted(info['missing_keys'])[:5]}")
        self.path = str(folder)
        self.model = model.float()
        self.model.requires_grad_(False)
        self.model.eval()

        n = self.num_hidden_states
        if not -n <= layer < n:
            raise ImageEncoderError(f"image encoder layer {layer} out of range: {path} has {n} hidden states "
                                    f"(embeddings + {n - 1} layers), so layer must be in [{-n}, {n - 1}]")
        self.layer = layer
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_hidden_states(self) -> int:
        """n_layers + 1 (the embedding output counts as one)."""
        return self.model.config.num_hidden_layers + 1

    @property
    def grid(self) -> tuple[int, int]:
        side = self.model.config.image_size // self.model.config.patch_size
        return side, side

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """The tower's patch grid: every image is resized to its square input first."""
        return self.grid

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> the tower's ``pixel_values`` (resized, CLIP-normalised)."""
        size = self.model.config.image_size
        x = ((images.float() + 1) / 2).clamp(0, 1)
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        _check_images(images)
        pixels = self.preprocess(images.to(self.mean.device))
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[self.layer][:, 1:].float(), self.grid


def build_image_encoder(cfg: ImageEncoderConfig) -> nn.Module:
    """``ConvImageEncoder`` or ``CLIPImageEncoder`` as ``cfg.kind`` says; both expose ``out_dim``."""
    if cfg.kind == "clip":
        return CLIPImageEncoder(cfg.clip_path, cfg.layer)
    return ConvImageEncoder(cfg)
