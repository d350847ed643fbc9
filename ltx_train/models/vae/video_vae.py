"""Causal temporal video VAE: (B, 3, 1 + tc*k, H, W) <-> latents (B, C_lat, 1 + k, H/sc, W/sc).

Layout (LTX-Video style): pixels are first folded into channels by a ``patch_size`` x
``patch_size`` space-to-depth, then ``len(channel_mults)`` levels of residual blocks separated by
down/up stages. Stage i halves space while i < log2(sc / patch_size) and halves time while
i < log2(tc). The encoder is causal (latents of frames <= t never see frames > t); the first frame
is encoded on its own, so an image is a one-frame video and maps to one latent. The decoder may look
ahead in time (``decoder_causal=False``) because reconstruction quality, not causality, is what it
is for; its time layout is still 1 + k -> 1 + tc*k. With ``patch_shortcut`` a learned linear map
between each latent and its own tc x sc x sc pixel block runs beside the deep path in both directions
(+3.5 dB after 400 steps of the tiny preset; see presets.tiny).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import torch
from einops import rearrange
from torch import nn

from ..distributions import DiagonalGaussian
from ltx_train.models.embeddings import TimestepEmbedder

from .blocks import Downsample, ResBlock3d, Upsample, block_linear, block_linear_transpose, make_norm
from .causal_conv import CausalConv3d


def _log2(n: int, what: str) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{what}={n} must be a power of 2")
    return int(math.log2(n))


@dataclass
class VideoVAEConfig:
    in_channels: int = 3
    latent_channels: int = 16
    spatial_compression: int = 8          # power of 2; = patch_size * 2**(spatial stages)
    temporal_compression: int = 4         # 1, 2, 4 or 8: 1 + tc*k frames -> 1 + k latents
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4)   # one level per entry; len - 1 down/up stages
    blocks_per_level: int = 1
    decoder_blocks_per_level: int | None = None  # None: same as the encoder
    patch_size: int | None = None         # None: spatial_compression / 2**(len(channel_mults) - 1)
    norm: str = "group"                   # "group" (per-frame GroupNorm) or "pixel" (RMS over channels)
    decoder_causal: bool = False
    timestep_conditioning: bool = False   # decoder conditioned on a noise level t in [0, 1]
    decoder_noise_max: float = 0.05       # training: t ~ U(0, max), latent <- (1 - t) z + t * noise
    temb_dim: int = 128
    patch_shortcut: bool = True           # learned linear pixel-block <-> latent path (see Encoder)

    def __post_init__(self):
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        n_stages = len(self.channel_mults) - 1
        if self.patch_size is None:
            self.patch_size = max(1, self.spatial_compression // 2 ** n_stages)
        n_s = _log2(self.spatial_compression, "spatial_compression") - _log2(self.patch_size, "patch_size")
        n_t = _log2(self.temporal_compression, "temporal_compression")
        if not 0 <= n_s <= n_stages or n_t > n_stages:
            raise ValueError(
                f"{n_stages} stages (channel_mults={self.channel_mults}) cannot give spatial "
                f"{self.spatial_compression}x with patch_size={self.patch_size} and temporal "
                f"{self.temporal_compression}x: add levels or change patch_size")

    @property
    def widths(self) -> list[int]:
        return [self.base_channels * m for m in self.channel_mults]

    @property
    def stages(self) -> list[tuple[int, int]]:
        """(temporal, spatial) factor of each down stage, shallowest first."""
        n_s = int(math.log2(self.spatial_compression // self.patch_size))
        n_t = int(math.log2(self.temporal_compression))
        return [(2 if i < n_t else 1, 2 if i < n_s else 1) for i in range(len(self.channel_mults) - 1)]

    @classmethod
    def from_dict(cls, d: Mapping) -> VideoVAEConfig:
        """Build from a plain / Hydra mapping; lists become tuples, unknown keys raise."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown VideoVAEConfig fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
                      for k, v in d.items()})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return d


class Encoder(nn.Module):
    """(B, 3, 1 + tc*k, H, W) -> (B, 2*C_lat, 1 + k, H/sc, W/sc) posterior params (mean, logvar)."""

    def __init__(self, cfg: VideoVAEConfig):
        super().__init__()
        p, w = cfg.patch_size, cfg.widths
        self.patch_size = p
        self.conv_in = CausalConv3d(cfg.in_channels * p * p, w[0], 3)
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, width in enumerate(w):
            blocks = [ResBlock3d(width, width, cfg.norm) for _ in range(cfg.blocks_per_level)]
            self.levels.append(nn.Sequential(*blocks))
            if i < len(cfg.stages):
                st, ss = cfg.stages[i]
                self.downs.append(Downsample(width, w[i + 1], st, ss))
        self.norm_out = make_norm(cfg.norm, w[-1])
        self.conv_out = CausalConv3d(w[-1], 2 * cfg.latent_channels, 3)
        # A linear map from each latent's own tc x sc x sc pixel block, added to the deep path: the
        # autoencoder can reach a PCA-like solution within a few hundred steps and the convs learn
        # the non-linear rest (the idea of DC-AE's space-to-channel shortcuts, made learnable).
        self.tc, self.sc = cfg.temporal_compression, cfg.spatial_compression
        self.shortcut = None
        if cfg.patch_shortcut:
            block = (self.tc, self.sc, self.sc)
            self.shortcut = nn.Conv3d(cfg.in_channels, 2 * cfg.latent_channels, block, stride=block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        h = self.conv_in(rearrange(x, "b c t (h ph) (w pw) -> b (c ph pw) t h w", ph=p, pw=p))
        for i, level in enumerate(self.levels):
            h = level(h)
            if i < len(self.downs):
                h = self.downs[i](h)
        out = self.conv_out(nn.functional.silu(self.norm_out(h)))
        if self.shortcut is not None:  # frame 0 padded to a block of its own, as in Downsample
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.tc - 1, -1, -1), x], dim=2)
            out = out + block_linear(x, self.shortcut)
        return out


class Decoder(nn.Module):
    """(B, C_lat, 1 + k, h, w) [+ timestep (B,)] -> (B, 3, 1 + tc*k, h*sc, w*sc)."""

    def __init__(self, cfg: VideoVAEConfig):
        super().__init__()
        p, w = cfg.patch_size, cfg.widths
        self.patch_size, self.out_channels = p, cfg.in_channels
        causal = cfg.decoder_causal
        temb = cfg.temb_dim if cfg.timestep_conditioning else 0
        n_blocks = cfg.decoder_blocks_per_level if cfg.decoder_blocks_per_level is not None else cfg.blocks_per_level
        self.temb = TimestepEmbedder(temb) if temb else None
        self.conv_in = CausalConv3d(cfg.latent_channels, w[-1], 3, causal=causal)
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in reversed(range(len(w))):
            self.levels.append(nn.ModuleList(
                [ResBlock3d(w[i], w[i], cfg.norm, causal, temb) for _ in range(n_blocks)]))
            if i > 0:
                st, ss = cfg.stages[i - 1]
                self.ups.append(Upsample(w[i], w[i - 1], st, ss, causal=causal))
        self.norm_out = make_norm(cfg.norm, w[0])
        self.out_mod = None
        if temb:  # zero-init: conditioning starts as a no-op
            self.out_mod = nn.Linear(temb, 2 * w[0])
            nn.init.zeros_(self.out_mod.weight)
            nn.init.zeros_(self.out_mod.bias)
        self.conv_out = CausalConv3d(w[0], cfg.in_channels * p * p, 3, causal=causal)
        self.tc, self.sc = cfg.temporal_compression, cfg.spatial_compression
        self.shortcut = None
        if cfg.patch_shortcut:  # latent -> its own pixel block, linear (mirror of the encoder's)
            block = (self.tc, self.sc, self.sc)
            self.shortcut = nn.ConvTranspose3d(cfg.latent_channels, cfg.in_channels, block, stride=block)

    def forward(self, z: torch.Tensor, timestep: torch.Tensor | None = None) -> torch.Tensor:
        temb = None
        if self.temb is not None:
            if timestep is None:
                timestep = torch.zeros(z.shape[0], device=z.device)
            temb = self.temb(timestep.to(z.device).expand(z.shape[0]))
        h = self.conv_in(z)
        for i, level in enumerate(self.levels):
            for block in level:
                h = block(h, temb)
            if i < len(self.ups):
                h = self.ups[i](h)
        shift = scale = None
        if temb is not None:
            shift, scale = self.out_mod(temb).chunk(2, dim=1)
        h = self.conv_out(nn.functional.silu(self.norm_out(h, shift, scale)))
        p = self.patch_size
        out = rearrange(h, "b (c ph pw) t h w -> b c t (h ph) (w pw)", ph=p, pw=p)
        if self.shortcut is not None:
            out = out + block_linear_transpose(z, self.shortcut)[:, :, self.tc - 1:]
        return out


class VideoVAE(nn.Module):
    """Encoder + decoder; ``encode`` returns a DiagonalGaussian, ``decode`` returns pixels in ~[-1, 1].

    Both accept ``tile`` (a ``TileConfig``) to run in overlapping tiles with bounded memory.
    """

    def __init__(self, config: VideoVAEConfig | None = None):
        super().__init__()
        self.config = config or VideoVAEConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    @property
    def spatial_compression(self) -> int:
        return self.config.spatial_compression

    @property
    def temporal_compression(self) -> int:
        return self.config.temporal_compression

    def check_input(self, x: torch.Tensor) -> None:
        t, h, w = x.shape[-3:]
        sc, tc = self.spatial_compression, self.temporal_compression
        if (t - 1) % tc or h % sc or w % sc:
            raise ValueError(f"video of {t} frames x {h}x{w}: need 1 + {tc}*k frames and H, W divisible "
                             f"by {sc} (see ltx_train.models.vae.crop_to_valid)")

    def encode_params(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, 1 + tc*k, H, W) -> (B, 2*C_lat, 1 + k, H/sc, W/sc) = cat(mean, logvar)."""
        self.check_input(x)
        return self.encoder(x)

    def encode(self, x: torch.Tensor, tile=None) -> DiagonalGaussian:
        if tile is not None:
            from .tiling import tiled_encode
            return DiagonalGaussian(tiled_encode(self, x, tile))
        return DiagonalGaussian(self.encode_params(x))

    def decode(self, z: torch.Tensor, timestep: torch.Tensor | float | None = None, tile=None) -> torch.Tensor:
        """z: (B, C_lat, 1 + k, h, w) -> (B, 3, 1 + tc*k, h*sc, w*sc).

        ``timestep`` (scalar or (B,)) only matters for a timestep-conditioned decoder: the noise
        level already mixed into ``z`` by the caller (0 / None = clean latents).
        """
        if timestep is not None and not torch.is_tensor(timestep):
            timestep = torch.tensor(float(timestep))
        if tile is not None:
            from .tiling import tiled_decode
            return tiled_decode(self, z, tile, timestep)
        return self.decoder(z, timestep)

    def forward(self, x: torch.Tensor, sample: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Reconstruct x: (B, 3, T, H, W) -> (recon of the same shape, posterior).

        In training mode a timestep-conditioned decoder sees latents noised at a random level
        t ~ U(0, decoder_noise_max), so it learns to denoise what a diffusion sampler hands it.
        """
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        timestep = None
        if self.config.timestep_conditioning and self.training:
            timestep = torch.rand(z.shape[0], device=z.device, generator=generator) * self.config.decoder_noise_max
            noise = torch.randn(z.shape, device=z.device, dtype=z.dtype, generator=generator)
            t = timestep.view(-1, 1, 1, 1, 1).to(z.dtype)
            z = (1 - t) * z + t * noise
        return self.decode(z, timestep), posterior


def valid_num_frames(num_frames: int, temporal_compression: int) -> int:
    """Largest 1 + tc*k <= num_frames."""
    if num_frames < 1:
        raise ValueError("need at least one frame")
    return 1 + (num_frames - 1) // temporal_compression * temporal_compression


def crop_to_valid(x: torch.Tensor, spatial_compression: int, temporal_compression: int) -> torch.Tensor:
    """Crop (..., T, H, W) to the largest valid VAE input: first 1 + tc*k frames, centred H, W
    rounded down to multiples of sc. Keeping the first frames keeps frame 0 = the clip's start."""
    t, h, w = x.shape[-3:]
    t2 = valid_num_frames(t, temporal_compression)
    h2, w2 = h // spatial_compression * spatial_compression, w // spatial_compression * spatial_compression
    if h2 == 0 or w2 == 0:
        raise ValueError(f"frames of {h}x{w} are smaller than the spatial compression {spatial_compression}")
    top, left = (h - h2) // 2, (w - w2) // 2
    return x[..., :t2, top:top + h2, left:left + w2]
