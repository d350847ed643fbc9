"""Text (+ first image) -> video + audio, from trained checkpoints.

    pipe = LTXPipeline.from_checkpoint("dit.ckpt", vocoder_checkpoint="vocoder.ckpt")
    clips = pipe(["a red rubber ball falls and bounces"], seconds=1.0, fps=24, height=64, width=64)
    pipe.save(clips[0], "out.mp4")

Sampling: flow-matching Euler (or Heun) from pure noise at t = 1 to data at t = 0 over the
sequence-length-shifted schedule, with classifier-free guidance against the empty caption.
Video latents are decoded by the VAE (tiled when asked), audio latents by the audio VAE to a log-mel
and by the vocoder to a waveform (Griffin-Lim when no vocoder is given).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.data.mp4 import write_mp4
from ltx_train.diffusion.flow import get_sigmas
from ltx_train.diffusion.samplers import cfg_model_fn, sample_euler, sample_heun
from ltx_train.eval.video_io import to_uint8_frames
from ltx_train.models.audio.griffin_lim import griffin_lim
from ltx_train.timing import mel_frames_per_video_frame

SAMPLERS = {"euler": sample_euler, "heun": sample_heun}


@dataclass
class GeneratedClip:
    prompt: str
    frames: np.ndarray       # (T, H, W, 3) uint8
    audio: np.ndarray        # (S,) float32 in [-1, 1]
    fps: float
    sample_rate: int


class LTXPipeline:
    def __init__(self, module, vocoder: torch.nn.Module | None = None, use_ema: bool = True):
        """module: a trained ``DiTModule`` (holds the frozen VAEs, text encoder, connector and DiT)."""
        self.module = module.eval()
        self.vocoder = vocoder.eval() if vocoder is not None else None
        self.use_ema = use_ema and module.ema is not None
        d = module.dit.cfg
        self.mel = LogMel(MelConfig(sample_rate=d.audio_sample_rate, hop_length=d.audio_hop_length,
                                    n_mels=module.audio_vae.cfg.n_mels)).to(module.device)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, vocoder_checkpoint: str | Path | None = None,
                        device: str | torch.device = "cpu", use_ema: bool = True) -> LTXPipeline:
        from ltx_train.modules.dit_module import DiTModule
        from ltx_train.modules.frozen import load_vocoder
        module = DiTModule.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=False)
        vocoder = load_vocoder(vocoder_checkpoint) if vocoder_checkpoint else None
        module.to(device)
        return cls(module, vocoder.to(device) if vocoder is not None else None, use_ema)

    @property
    def device(self) -> torch.device:
        return self.module.device

    def num_frames(self, seconds: float, fps: float) -> int:
        """Closest frame count of the causal layout 1 + tc*k to ``seconds`` (at least 1 + tc)."""
        tc = self.module.vae.temporal_compression
        k = max(1, round((seconds * fps - 1) / tc))
        return 1 + tc * k

    @torch.no_grad()
    def __call__(self, prompts: str | list[str], seconds: float = 1.0, fps: float = 24.0,
                 height: int = 64, width: int = 64, steps: int = 30, guidance_scale: float = 3.0,
                 sampler: str = "euler", seed: int = 0, image: torch.Tensor | None = None,
                 negative_prompt: str = "", tile=None) -> list[GeneratedClip]:
        """image: optional first frame in [-1, 1] for image-to-video: (3, H, W) or (1, 3, H, W) for every
        prompt, or (B, 3, H, W) with image[i] the first frame of prompts[i]. The frame's latent is held
        fixed (t = 0, zero velocity) while the rest of the clip is sampled."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        m, dev, b = self.module, self.device, len(prompts)
        vae, avae, dit = m.vae, m.audio_vae, m.dit
        sc = vae.spatial_compression
        if height % sc or width % sc:
            raise ValueError(f"height and width must be multiples of the VAE's {sc}x spatial compression")
        t = self.num_frames(seconds, fps)
        mel_frames = t * mel_frames_per_video_frame(dit.cfg.audio_sample_rate, dit.cfg.audio_hop_length, fps)
        ta = mel_frames // avae.cfg.time_compression
        tv = 1 + (t - 1) // vae.temporal_compression
        g = torch.Generator().manual_seed(seed)
        x = {"video": torch.randn(b, dit.cfg.video_channels, tv, height // sc, width // sc, generator=g).to(dev),
             "audio": torch.randn(b, dit.cfg.audio_channels, ta, generator=g).to(dev)}

        cond_mask, cond_latent = None, None
        if image is not None:
            img = image[None] if image.dim() == 3 else image
            if img.dim() != 4 or img.shape[0] not in (1, b) or tuple(img.shape[1:]) != (3, height, width):
                raise ValueError(f"image must be (3, {height}, {width}) or (B, 3, {height}, {width}) with B = 1 "
                                 f"(shared) or B = {b} (one first frame per prompt), got {tuple(image.shape)}")
            # (B, 3, 1, H, W): each prompt's own frame (or one frame for all) as a 1-frame causal clip
            z0 = vae.encode(img.to(dev)[:, :, None].expand(b, -1, -1, -1, -1)).mode()
            cond_latent, _ = m.normalize(z0, x["audio"])
            cond_mask = torch.zeros(b, tv, dtype=torch.bool, device=dev)
            cond_mask[:, 0] = True
            x["video"][:, :, :1] = cond_latent

        fps_t = torch.full((b,), float(fps), device=dev)

        def model(x, sigma, text, text_mask):
            out = dit(x["video"], x["audio"], sigma, text, text_mask, cond_mask=cond_mask, fps=fps_t)
            v = out["video"]
            if cond_mask is not None:  # the clean first frame must not move
                v = v.masked_fill(cond_mask[:, None, :, None, None], 0.0)
            return {"video": v, "audio": out["audio"]}

        ema = m.ema.swapped_into(m.denoiser) if self.use_ema else nullcontext()
        with ema:
            text, mask = m.text_tokens(prompts)
            utext, umask = m.text_tokens([negative_prompt] * b)
            fn = cfg_model_fn(model, {"text": text, "text_mask": mask}, {"text": utext, "text_mask": umask},
                              guidance_scale)
            seq_len = m.num_tokens(x["video"], x["audio"])
            x = SAMPLERS[sampler](fn, x, get_sigmas(steps, seq_len, device=dev))
        z_v, z_a = m.denormalize(x["video"], x["audio"])
        video = vae.decode(z_v, tile=tile)                                   # (B, 3, T, H, W)
        log_mel = avae.decode(z_a)                                           # (B, n_mels, F)
        wav = self.vocoder(log_mel) if self.vocoder is not None else griffin_lim(log_mel, self.mel)
        wav = wav.reshape(b, -1)[:, : mel_frames * dit.cfg.audio_hop_length].clamp(-1, 1)
        return [GeneratedClip(p, to_uint8_frames(video[i]), wav[i].float().cpu().numpy(), float(fps),
                              dit.cfg.audio_sample_rate) for i, p in enumerate(prompts)]

    @staticmethod
    def save(clip: GeneratedClip, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, clip.frames, clip.fps, clip.audio, clip.sample_rate)
        return path

