"""Joint audio-video diffusion transformer (LTX-2 style, single stream).

One sequence ``[text, (audio_text), video, audio]`` goes through ``depth`` adaLN-Zero blocks of joint
self-attention, so every video token can attend to every audio and text token and vice versa.

Inputs (one sample = one clip):
- video latents ``(B, Cv, Tv, Hv, Wv)``, patchified by ``patch_size (pt, ph, pw)`` into
  ``Tt * Hp * Wp`` tokens (Tt = Tv / pt, ...);
- audio latents ``(B, Ca, Ta)``, one token per latent;
- text tokens ``(B, L, text_dim)`` from the connector with key mask ``(B, L)`` (True = real token);
  pass ``text_mask=None`` when every token is valid (connector ``register_mode="replace"``): the
  unmasked attention kernels are much faster;
- ``timestep (B,)``: flow time t in [0, 1] (1 = pure noise), see ``ltx_train.diffusion.flow``.

Per-token timesteps: ``video_timestep (B, Tv)`` gives each video latent frame its own t and
``cond_mask (B, Tv)`` marks clean conditioning frames (forced to t = 0); ``audio_timestep (B,)``
gives the audio its own t. Image-to-video: put the clean image latent in frame 0, pass
``cond_mask[:, 0] = True`` and ignore frame 0 in the loss. Internally tokens are grouped by
timestep (text, audio, one group per video token-frame), the modulation is computed once per group
and broadcast over the group's run of tokens (``layers.expand_runs``), so per-token conditioning
costs no per-token matmuls. With a temporal patch
pt > 1 a token-frame takes the timestep of its first latent frame.

Image tokens (image-to-video with spatial features, ``image_dim > 0``): ``image (B, N, image_dim)``, a
``grid (gh, gw)`` of feature tokens of the conditioning image in row-major order (e.g.
``ltx_train.models.image``), get their own projection and modality embedding and sit after the text
in the sequence (the text-side timestep group). Their RoPE positions lie on the first latent frame:
time of frame 0, and (h, w) the centre of each feature cell mapped onto the video token grid, so an
image token and the frame-0 video token at the same place share their rotation.

RoPE positions (``positions``): video (t_seconds * rope_time_scale, h, w), audio (t_seconds *
rope_time_scale, 0, 0), text (0, 0, 0) = unrotated, image (t of frame 0, h, w on the video grid); times come from ``ltx_train.timing`` so a video
and an audio token at the same instant share the temporal rotation.

``separate_audio_text``: LTX-2 feeds each modality from its own text connector. With the flag set the
model takes a second token set ``audio_text`` (own projection and modality embedding) in the same
joint sequence; instantiate two ``TextConnector``s to produce them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ltx_train.models.dit.layers import DiTBlock, FinalLayer
from ltx_train.models.embeddings import TimestepEmbedder
from ltx_train.models.dit.rope import default_axes_dim, rope_cos_sin
from ltx_train.timing import audio_latent_times, video_latent_times

TEXT, AUDIO_TEXT, VIDEO, AUDIO = range(4)  # rows of the modality embedding (images: ``image_modality``)


@dataclass
class JointDiTConfig:
    # inputs
    video_channels: int = 16
    audio_channels: int = 8
    text_dim: int = 256                      # width of the connector tokens
    patch_size: tuple[int, int, int] = (1, 1, 1)
    # trunk
    width: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    modulation: str = "single"               # "single" (LTX-Video/PixArt adaLN-single) | "block" (DiT)
    eps: float = 1e-6
    # RoPE
    rope_theta: float = 10000.0
    rope_axes_dim: tuple[int, int, int] | None = None   # None: half the head dim to time, rest to h, w
    rope_time_scale: float = 25.0            # RoPE units per second (~ one audio latent per unit)
    # time axis of the latents (must match the VAEs and ltx_train.timing)
    fps: float = 24.0                        # default when forward gets no fps
    temporal_compression: int = 8
    audio_sample_rate: int = 24000
    audio_hop_length: int = 250
    audio_compression: int = 4
    # text
    separate_audio_text: bool = False        # second text-token stream for audio (one connector each)
    # image-to-video spatial features: width of the image tokens (0: the model reads none)
    image_dim: int = 0
    # read by the trainer (ltx_train.parallelize.checkpoint_blocks), not by the model; kept here so
    # that configs and pretrained directories that name it still load (model.activation_checkpointing)
    gradient_checkpointing: bool = False

    def __post_init__(self):
        # Hydra/OmegaConf hand sequences over as lists
        self.patch_size = tuple(int(p) for p in self.patch_size)
        if self.rope_axes_dim is not None:
            self.rope_axes_dim = tuple(int(d) for d in self.rope_axes_dim)

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


class JointDiT(nn.Module):
    def __init__(self, cfg: JointDiTConfig | None = None, **kwargs):
        super().__init__()
        cfg = cfg or JointDiTConfig(**kwargs)
        self.cfg = cfg
        d = cfg.width
        pt, ph, pw = cfg.patch_size
        self.axes_dim = cfg.rope_axes_dim or default_axes_dim(cfg.head_dim, 3)
        if sum(self.axes_dim) != cfg.head_dim:
            raise ValueError(f"rope_axes_dim {self.axes_dim} must sum to head_dim {cfg.head_dim}")

        self.video_in = nn.Linear(cfg.video_channels * pt * ph * pw, d)
        self.audio_in = nn.Linear(cfg.audio_channels, d)
        self.text_in = nn.Linear(cfg.text_dim, d)
        self.audio_text_in = nn.Linear(cfg.text_dim, d) if cfg.separate_audio_text else None
        self.modality = nn.Parameter(torch.zeros(4, d))
        # image tokens: own projection and modality row (a separate parameter, so models without
        # images keep their (4, d) table and old checkpoints load unchanged)
        self.image_in = nn.Linear(cfg.image_dim, d) if cfg.image_dim > 0 else None
        self.image_modality = nn.Parameter(torch.zeros(d)) if cfg.image_dim > 0 else None
        self.t_embedder = TimestepEmbedder(d)
        self.adaln_single = nn.Linear(d, 6 * d) if cfg.modulation == "single" else None
        self.blocks = nn.ModuleList(
            DiTBlock(d, cfg.heads, cfg.mlp_ratio, cfg.qk_norm, cfg.modulation, cfg.eps) for _ in range(cfg.depth))
        self.video_out = FinalLayer(d, cfg.video_channels * pt * ph * pw, cfg.eps)
        self.audio_out = FinalLayer(d, cfg.audio_channels, cfg.eps)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.modality, std=0.02)
        if self.image_modality is not None:
            nn.init.normal_(self.image_modality, std=0.02)
        for layer in self.t_embedder.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=0.02)
        # adaLN-Zero: no modulation and zero gates at start, so every block is the identity and the
        # first prediction is exactly 0; the gates get gradients and open during training
        zero = [self.adaln_single] + [b.ada for b in self.blocks]
        zero += [layer for head in (self.video_out, self.audio_out) for layer in (head.ada, head.linear)]
        for layer in zero:
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    # ---------------------------------------------------------------- positions
    def positions(self, num_text: int, grid: tuple[int, int, int], num_audio: int,
                  fps: float | torch.Tensor, batch: int, device=None,
                  image_grid: tuple[int, int] | None = None) -> torch.Tensor:
        """RoPE positions of the whole sequence -> (B, num_text [+ gh*gw] + Tt*Hp*Wp + Ta, 3).

        grid = (Tt, Hp, Wp) token grid of the video; fps: float or (B,) per clip; image_grid = (gh, gw)
        of the image tokens that follow the text (None: no image tokens).
        """
        cfg = self.cfg
        tt, hp, wp = grid
        pt = cfg.patch_size[0]
        # latent times in *frames* (fps = 1), then seconds per clip: one code path for float and (B,) fps
        frames = video_latent_times(tt * pt, 1.0, cfg.temporal_compression).to(device)
        frames = frames.view(tt, pt).mean(1)                          # a token covers pt latents
        fps = torch.as_tensor(fps, dtype=torch.float32, device=device).reshape(-1, 1).expand(batch, 1)
        v_sec = frames[None] / fps                                   # (B, Tt)
        a_sec = audio_latent_times(num_audio, cfg.audio_sample_rate, cfg.audio_hop_length,
                                   cfg.audio_compression).to(device)
        s = cfg.rope_time_scale
        v_t = v_sec[:, :, None, None].expand(batch, tt, hp, wp) * s
        v_h = torch.arange(hp, device=device, dtype=torch.float32)[None, None, :, None].expand(batch, tt, hp, wp)
        v_w = torch.arange(wp, device=device, dtype=torch.float32)[None, None, None, :].expand(batch, tt, hp, wp)
        video = torch.stack([v_t, v_h, v_w], dim=-1).reshape(batch, tt * hp * wp, 3)
        audio = F.pad((a_sec * s)[None, :, None].expand(batch, num_audio, 1), (0, 2))
        text = torch.zeros(batch, num_text, 3, device=device)
        parts = [text]
        if image_grid is not None:  # cell centres of the feature grid, in video-token units, at frame 0
            gh, gw = image_grid
            i_h = (torch.arange(gh, device=device, dtype=torch.float32) + 0.5) * hp / gh - 0.5
            i_w = (torch.arange(gw, device=device, dtype=torch.float32) + 0.5) * wp / gw - 0.5
            i_t = v_t[:, :1, :1, :1].expand(batch, 1, gh, gw)
            hw = torch.stack(torch.meshgrid(i_h, i_w, indexing="ij"), dim=-1)[None, None].expand(batch, 1, gh, gw, 2)
            parts.append(torch.cat([i_t[..., None], hw], dim=-1).reshape(batch, gh * gw, 3))
        return torch.cat(parts + [video, audio], dim=1)

    # ---------------------------------------------------------------- timesteps
    def _timestep_groups(self, timestep, video_timestep, cond_mask, audio_timestep, num_text, grid, num_audio):
        """-> (tg (B, G), runs or None): per-group flow times, and the token layout as runs of
        ``(group, count)`` in sequence order (text, video token-frames, audio); None = one group."""
        b = timestep.shape[0]
        if video_timestep is None and cond_mask is None and audio_timestep is None:
            return timestep[:, None], None
        tt, hp, wp = grid
        pt = self.cfg.patch_size[0]
        vt = video_timestep if video_timestep is not None else timestep[:, None].expand(b, tt * pt)
        if cond_mask is not None:
            vt = torch.where(cond_mask.bool(), torch.zeros_like(vt), vt)
        at = timestep
        if audio_timestep is not None:
            at = torch.as_tensor(audio_timestep, device=timestep.device).reshape(-1).expand(b)
        tg = torch.cat([timestep[:, None], at[:, None], vt[:, ::pt]], dim=1).to(timestep.dtype)
        runs = ((0, num_text),) + tuple((2 + i, hp * wp) for i in range(tt)) + ((1, num_audio),)
        return tg, runs

    # ---------------------------------------------------------------- forward
    def forward(self, video: torch.Tensor, audio: torch.Tensor, timestep: torch.Tensor,
                text: torch.Tensor, text_mask: torch.Tensor | None = None, *,
                audio_text: torch.Tensor | None = None, audio_text_mask: torch.Tensor | None = None,
                video_timestep: torch.Tensor | None = None, cond_mask: torch.Tensor | None = None,
                audio_timestep: torch.Tensor | None = None, fps: float | torch.Tensor | None = None,
                image: torch.Tensor | None = None, image_grid: tuple[int, int] | None = None,
                return_hidden_at: int | None = None) -> dict:
        """Predict flow velocities.

        video (B, Cv, Tv, Hv, Wv), audio (B, Ca, Ta), timestep (B,) or scalar, text (B, L, text_dim),
        text_mask (B, L) bool; image (B, gh*gw, image_dim) tokens on ``image_grid`` (gh, gw), required
        when ``image_dim > 0`` and refused otherwise. Returns {"video": (B, Cv, Tv, Hv, Wv), "audio": (B, Ca, Ta)} and, when
        ``return_hidden_at=k``, "hidden": {"video": (B, Tt, Hp*Wp, D), "audio": (B, Ta, D)}: the
        tokens after block k (0-based, negative counts from the end) for the physics heads.
        """
        cfg = self.cfg
        b, _, tv, hv, wv = video.shape
        pt, ph, pw = cfg.patch_size
        if tv % pt or hv % ph or wv % pw:
            raise ValueError(f"video latents {tuple(video.shape[2:])} not divisible by patch {cfg.patch_size}")
        grid = (tv // pt, hv // ph, wv // pw)
        ta = audio.shape[-1]
        timestep = torch.as_tensor(timestep, device=video.device, dtype=torch.float32).reshape(-1).expand(b)
        emb = self.modality.to(video.dtype)

        vid = self.video_in(rearrange(video, "b c (t p) (h q) (w r) -> b (t h w) (c p q r)", p=pt, q=ph, r=pw))
        aud = self.audio_in(rearrange(audio, "b c t -> b t c"))
        parts, masks = [self.text_in(text) + emb[TEXT]], [text_mask]
        if cfg.separate_audio_text:
            if audio_text is None:
                raise ValueError("separate_audio_text=True needs audio_text tokens")
            parts.append(self.audio_text_in(audio_text) + emb[AUDIO_TEXT])
            masks.append(audio_text_mask)
        num_text = sum(p.shape[1] for p in parts)
        if (image is None) != (self.image_in is None):
            raise ValueError("this DiT reads image tokens (image_dim > 0): pass image= and image_grid="
                             if image is None else "image tokens given, but this DiT has image_dim=0")
        if image is not None:
            if image_grid is None or image.shape[1] != image_grid[0] * image_grid[1]:
                raise ValueError(f"image tokens {tuple(image.shape)} do not fill image_grid={image_grid}")
            parts.append(self.image_in(image.to(vid.dtype)) + self.image_modality.to(vid.dtype))
            masks.append(None)
        num_side = sum(p.shape[1] for p in parts)         # text (+ image) tokens: the text-side group
        x = torch.cat(parts + [vid + emb[VIDEO], aud + emb[AUDIO]], dim=1)
        mask = None
        if any(m is not None for m in masks):
            masks = [m.bool() if m is not None else torch.ones(p.shape[:2], dtype=torch.bool, device=x.device)
                     for m, p in zip(masks, parts)]
            mask = torch.cat(masks + [torch.ones(b, vid.shape[1] + ta, dtype=torch.bool, device=x.device)], 1)

        pos = self.positions(num_text, grid, ta, cfg.fps if fps is None else fps, b, x.device,
                             image_grid=None if image is None else tuple(image_grid))
        rope = rope_cos_sin(pos, self.axes_dim, cfg.rope_theta)
        tg, runs = self._timestep_groups(timestep, video_timestep, cond_mask, audio_timestep, num_side, grid, ta)
        t_emb = self.t_embedder(tg)                                          # (B, G, D)
        mod_in = self.adaln_single(F.silu(t_emb)) if self.adaln_single is not None else F.silu(t_emb)

        if return_hidden_at is not None and not -cfg.depth <= return_hidden_at < cfg.depth:
            raise ValueError(f"return_hidden_at={return_hidden_at} outside the {cfg.depth} blocks")
        hidden_at = None if return_hidden_at is None else return_hidden_at % cfg.depth
        hidden = None
        for i, block in enumerate(self.blocks):
            x = block(x, mod_in, runs, rope, mask)
            if i == hidden_at:
                hidden = x

        nv = vid.shape[1]
        sl_v, sl_a = slice(num_side, num_side + nv), slice(num_side + nv, None)
        r_v = runs[1:-1] if runs is not None else None      # video token-frames, then audio
        r_a = runs[-1:] if runs is not None else None
        v = self.video_out(x[:, sl_v], t_emb, r_v)
        out = {
            "video": rearrange(v, "b (t h w) (c p q r) -> b c (t p) (h q) (w r)",
                               t=grid[0], h=grid[1], w=grid[2], p=pt, q=ph, r=pw),
            "audio": rearrange(self.audio_out(x[:, sl_a], t_emb, r_a), "b t c -> b c t"),
        }
        if hidden is not None:
            out["hidden"] = {
                "video": rearrange(hidden[:, sl_v], "b (t s) d -> b t s d", t=grid[0]),
                "audio": hidden[:, sl_a],
            }
        return out

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

