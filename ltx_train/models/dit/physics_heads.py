"""Physics probes on an intermediate DiT layer (targets and losses: ``ltx_train.objectives.physics``).

The heads read ``JointDiT(..., return_hidden_at=k)["hidden"]``: video tokens ``(B, Tt, S, D)``
(Tt token-frames of S = Hp*Wp tokens) and audio tokens ``(B, Ta, D)``; they predict
- ``gravity (B, 2)``: unit vector (cosine loss), from all video tokens pooled;
- ``light (B, 3)``: light position (L2), pooled likewise;
- ``centers (B, Tv, K, 2)``: object centres per video latent frame (L2 where ``obj_mask``);
- ``contact_video (B, Tv)`` and ``contact_audio (B, Ta)``: contact logits (BCE) per latent.
Gradients flow back into the DiT (the aux losses shape its features); pass detached hidden states
for a pure probe.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange



@dataclass
class PhysicsHeadsConfig:
    width: int = 128          # DiT width (D of the hidden states)
    hidden: int = 256
    max_objects: int = 3      # K object slots of the batch
    patch_t: int = 1          # DiT temporal patch: each token-frame predicts patch_t latent frames


def _head(width: int, hidden: int, out: int) -> nn.Sequential:
    # LayerNorm first: residual-stream magnitudes grow with depth and differ between checkpoints
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, out))


class PhysicsHeads(nn.Module):
    def __init__(self, cfg: PhysicsHeadsConfig | None = None, **kwargs):
        super().__init__()
        cfg = cfg or PhysicsHeadsConfig(**kwargs)
        self.cfg = cfg
        k, pt = cfg.max_objects, cfg.patch_t
        self.clip_head = _head(cfg.width, cfg.hidden, 2 + 3)                  # gravity, light
        self.frame_head = _head(cfg.width, cfg.hidden, pt * (2 * k + 1))       # centres, contact
        self.audio_head = _head(cfg.width, cfg.hidden, 1)                      # contact

    def forward(self, hidden: dict) -> dict:
        """hidden {"video": (B, Tt, S, D), "audio": (B, Ta, D)} -> predictions (see module doc)."""
        video, audio = hidden["video"], hidden["audio"]
        clip = self.clip_head(video.mean(dim=(1, 2)))
        frame = self.frame_head(video.mean(dim=2))
        frame = rearrange(frame, "b t (p o) -> b (t p) o", p=self.cfg.patch_t)
        k = self.cfg.max_objects
        return {
            "gravity": F.normalize(clip[:, :2].float(), dim=-1, eps=1e-6),
            "light": clip[:, 2:].float(),
            "centers": rearrange(frame[..., : 2 * k], "b t (k two) -> b t k two", two=2).float(),
            "contact_video": frame[..., 2 * k].float(),
            "contact_audio": self.audio_head(audio)[..., 0].float(),
        }
