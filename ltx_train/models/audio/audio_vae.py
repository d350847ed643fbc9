"""Audio VAE: 2D convs over the log-mel image (time, mel), causal in time.

    log-mel (B, n_mels, F) -> normalise -> delay by the STFT lookahead -> (B, 1, F, n_mels)
    -> stages of [residual blocks, downsample] (time /2 for the first log2(tc) stages, mel /2 for
       the first log2(mel_downsample)) -> fold mel into channels -> DiagonalGaussian (B, C_a, F / tc)
    decoder: the mirror image with nearest upsampling, back to log-mel (B, n_mels, F).

Latent k stands for samples ``k*tc*hop .. (k+1)*tc*hop`` (mel frames ``k*tc .. k*tc + tc - 1`` in
``ltx_train.timing``'s convention): with tc = 4 and 4 mel frames per 24 fps video frame there is one
audio latent per video frame, and an impact at t seconds first changes latent
``timing.audio_latent_index(t, ...)`` (tests/test_audio_time.py).

Causal in time means latent k sees no audio after its span ends at sample ``(k+1)*tc*hop``: time
padding is on the past side only, strided convs read only the frames of their own group and earlier,
and normalisation is per position over channels (a GroupNorm would mix in statistics of the future).
The centred STFT lets mel frame m peek ``win/2 - hop`` samples past its hop, so the encoder first
delays the mel by ``lookahead_frames`` (``ltx_train.audio.mel.lookahead_frames``) to remove that peek.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ltx_train.models.distributions import DiagonalGaussian


@dataclass
class AudioVAEConfig:
    n_mels: int = 64
    latent_channels: int = 8
    time_compression: int = 4
    mel_downsample: int = 4  # mel bins folded into channels at the bottleneck: n_mels / mel_downsample
    channels: tuple[int, ...] = (32, 64, 128)  # one stage each; a downsample between stages
    blocks_per_stage: int = 1
    lookahead_frames: int = 1  # = mel.lookahead_frames(MelConfig()) for win 1000 / hop 250
    # fixed log-mel normalisation: mean / std over 128 synthetic-world clips (impacts over -45 dBFS
    # room noise) were -5.32 / 1.37; re-measure for other data (silence sits at log(1e-5) = -11.5)
    mel_mean: float = -5.3
    mel_std: float = 1.4
    log_floor: float = 1e-5  # LogMel's floor: the value of silence, used to pad the delayed past

    def __post_init__(self):
        for name in ("time_compression", "mel_downsample"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"{name}={v} must be a power of 2")
        stages = len(self.channels) - 1
        if max(self.time_compression, self.mel_downsample).bit_length() - 1 > stages:
            raise ValueError(f"{len(self.channels)} channel stages allow at most {stages} downsamplings "
                             f"(time_compression={self.time_compression}, mel_downsample={self.mel_downsample})")
        if self.n_mels % self.mel_downsample:
            raise ValueError(f"n_mels={self.n_mels} must be divisible by mel_downsample={self.mel_downsample}")

    @property
    def bottleneck_channels(self) -> int:
        return self.channels[-1] * (self.n_mels // self.mel_downsample)


class CausalConv2d(nn.Module):
    """Conv over (time, mel) images (B, C, T, M): time padded on the past side only, mel symmetric.

    With a time stride s the output j reads inputs up to ``j*s + s - 1`` (its own group), never later.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: tuple[int, int] = (1, 1)):
        super().__init__()
        st = stride[0]
        self.time_pad = kernel - st  # newest input read by output j: j*st - pad + kernel - 1 = j*st + st - 1
        self.mel_pad = (kernel - 1) // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.mel_pad, self.mel_pad, self.time_pad, 0)))


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each (time, mel) position: no statistics cross time."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ResBlock2d(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.Sequential(ChannelNorm(cin), nn.SiLU(), CausalConv2d(cin, cout),
                                   ChannelNorm(cout), nn.SiLU(), CausalConv2d(cout, cout))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


def _strides(cfg: AudioVAEConfig) -> list[tuple[int, int]]:
    """(time, mel) stride of each of the len(channels) - 1 resamplings, coarsest last."""
    nt, nm = int(math.log2(cfg.time_compression)), int(math.log2(cfg.mel_downsample))
    return [(2 if i < nt else 1, 2 if i < nm else 1) for i in range(len(cfg.channels) - 1)]


class AudioEncoder(nn.Module):
    """normalised, delayed log-mel image (B, 1, F, n_mels) -> posterior params (B, 2 * C_a, F / tc)."""

    def __init__(self, cfg: AudioVAEConfig):
        super().__init__()
        ch = cfg.channels
        self.conv_in = CausalConv2d(1, ch[0])
        self.stages = nn.ModuleList()
        strides = _strides(cfg)
        for i, c in enumerate(ch):
            blocks = [ResBlock2d(c, c) for _ in range(cfg.blocks_per_stage)]
            if i < len(ch) - 1:
                blocks.append(CausalConv2d(c, ch[i + 1], 3, strides[i]))
            self.stages.append(nn.Sequential(*blocks))
        self.norm_out = ChannelNorm(ch[-1])
        self.conv_out = nn.Conv1d(cfg.bottleneck_channels, 2 * cfg.latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for stage in self.stages:
            x = stage(x)
        x = F.silu(self.norm_out(x))
        return self.conv_out(rearrange(x, "b c t m -> b (c m) t"))


class AudioDecoder(nn.Module):
    """latents (B, C_a, F / tc) -> normalised log-mel image (B, 1, F, n_mels); causal as the encoder."""

    def __init__(self, cfg: AudioVAEConfig):
        super().__init__()
        ch = cfg.channels[::-1]
        self.mel_bins = cfg.n_mels // cfg.mel_downsample
        self.conv_in = nn.Conv1d(cfg.latent_channels, cfg.bottleneck_channels, 1)
        self.strides = _strides(cfg)[::-1]
        self.stages = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, c in enumerate(ch):
            self.stages.append(nn.Sequential(*[ResBlock2d(c, c) for _ in range(cfg.blocks_per_stage)]))
            if i < len(ch) - 1:
                self.ups.append(CausalConv2d(c, ch[i + 1]))
        self.norm_out = ChannelNorm(ch[-1])
        self.conv_out = CausalConv2d(ch[-1], 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = rearrange(self.conv_in(z), "b (c m) t -> b c t m", m=self.mel_bins)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.ups):
                # nearest repeat: output frame t comes from latent frame t // 2 -- never a later one
                x = self.ups[i](F.interpolate(x, scale_factor=self.strides[i], mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(x)))


class AudioVAE(nn.Module):
    """log-mel (B, n_mels, F) <-> latents (B, C_a, F / time_compression)."""

    def __init__(self, cfg: AudioVAEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AudioVAEConfig()
        self.encoder = AudioEncoder(cfg)
        self.decoder = AudioDecoder(cfg)

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.cfg.mel_mean) / self.cfg.mel_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cfg.mel_std + self.cfg.mel_mean

    def encode(self, log_mel: torch.Tensor) -> DiagonalGaussian:
        """log-mel (B, n_mels, F) -> posterior over latents (B, C_a, F / tc)."""
        c = self.cfg
        if log_mel.shape[1] != c.n_mels or log_mel.shape[-1] % c.time_compression:
            raise ValueError(f"expected log-mel (B, {c.n_mels}, F) with F divisible by "
                             f"{c.time_compression}, got {tuple(log_mel.shape)}")
        x = self.normalize(log_mel)
        if c.lookahead_frames:
            silence = self.normalize(torch.tensor(math.log(c.log_floor)))
            x = F.pad(x, (c.lookahead_frames, 0), value=float(silence))[..., : log_mel.shape[-1]]
        return DiagonalGaussian(self.encoder(rearrange(x, "b m t -> b 1 t m")))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latents (B, C_a, L) -> log-mel (B, n_mels, L * tc)."""
        return self.denormalize(rearrange(self.decoder(z), "b 1 t m -> b m t"))

    def forward(self, log_mel: torch.Tensor, sample_posterior: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, DiagonalGaussian]:
        posterior = self.encode(log_mel)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z), posterior
