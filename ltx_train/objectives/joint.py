"""The DiT stage's objective: flow matching on video and audio latents, plus physics auxiliaries.

    t ~ logit-normal shifted by token count; x_t = (1 - t) z + t noise; the model predicts v = noise - z
    loss = w_v * MSE_video (clean first frame excluded when image-conditioned)
         + w_a * MSE_audio (clips without audio masked out) + sum_k w_k * physics_k

Image tokens (a model with an image encoder): a clip conditioned on its clean first frame also gets
that frame's spatial feature tokens, except for ``image_dropout`` of them (null tokens, so image
guidance has an unconditional branch); every other clip gets the null tokens.

Used by full training (``DiTModule``) and LoRA finetuning alike; it owns everything that depends on
the batch layout, so ``LTXModel`` never sees a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ltx_train.diffusion.flow import add_noise, flow_loss, sample_timesteps, velocity_target
from ltx_train.models.ltx import LTXModel
from ltx_train.objectives.physics import physics_losses, physics_targets

PHYSICS_KEYS = ("gravity", "light", "centers", "contact_video", "contact_audio")


@dataclass
class JointLossConfig:
    video_weight: float = 1.0
    audio_weight: float = 1.0
    first_frame_prob: float = 0.2     # share of clips whose clean latent frame 0 conditions the rest
    image_dropout: float = 0.1        # share of those whose image tokens are the null ones (image CFG)
    timestep_mean: float = 0.0
    timestep_std: float = 1.0
    timestep_shift: bool = True
    physics: bool = True              # add the physics losses (when the model has heads)
    contact_pos_weight: float = 4.0   # contacts are rare latents; up-weight positives
    gravity: float = 0.1
    light: float = 0.1
    centers: float = 0.1
    contact_video: float = 0.05
    contact_audio: float = 0.05


def first_frames(batch: dict) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1]: the clips' first frames, from decoded video or from a latent cache."""
    if "first_frame" in batch:
        return batch["first_frame"].float()
    if "video" in batch:
        return batch["video"][:, :, 0].float()
    raise ValueError("the model reads image tokens, but the batch has no first frames (a latent cache written "
                     "before first frames were stored: re-run `ltx-shards cache`)")


def joint_losses(model: LTXModel, z_v: torch.Tensor, z_a: torch.Tensor, text: torch.Tensor,
                 text_mask: torch.Tensor | None, batch: dict, cfg: JointLossConfig,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Named scalar losses and their weighted sum ``"loss"``.

    z_v (B, Cv, Tv, Hv, Wv), z_a (B, Ca, Ta): *normalised* clean latents; text (B, N, text_dim) the
    connector's tokens. ``generator`` (a CPU generator) makes noise, times and conditioning
    reproducible, as validation wants; None draws on the latents' device (training: no host copies).
    """
    b, dev = z_v.shape[0], z_v.device
    gen_dev = "cpu" if generator is not None else dev
    t = sample_timesteps(b, model.num_tokens(z_v, z_a), generator, mean=cfg.timestep_mean, std=cfg.timestep_std,
                         shift=cfg.timestep_shift, device=gen_dev).to(dev)
    n_v = torch.randn(z_v.shape, generator=generator, device=gen_dev).to(dev)
    n_a = torch.randn(z_a.shape, generator=generator, device=gen_dev).to(dev)
    x_v, x_a = add_noise(z_v, n_v, t), add_noise(z_a, n_a, t)

    # image-to-video: some clips keep latent frame 0 clean (t = 0) and are not scored on it
    cond = None
    if cfg.first_frame_prob > 0:
        cond = torch.zeros(b, z_v.shape[2], dtype=torch.bool, device=dev)
        cond[:, 0] = torch.rand(b, generator=generator, device=gen_dev).to(dev) < cfg.first_frame_prob
        x_v = torch.where(cond[:, None, :, None, None], z_v, x_v)

    image = None
    if model.image_encoder is not None:
        keep = torch.zeros(b, dtype=torch.bool, device=dev) if cond is None else cond[:, 0].clone()
        if cfg.image_dropout > 0:
            keep &= torch.rand(b, generator=generator, device=gen_dev).to(dev) >= cfg.image_dropout
        image = model.image_tokens(first_frames(batch).to(dev), keep)

    use_physics = cfg.physics and model.physics is not None
    out = model(x_v, x_a, t, text, text_mask, cond_mask=cond, fps=batch["fps"], physics=use_physics, image=image)
    v_mask = None if cond is None else (~cond)[:, None, :, None, None]
    has_audio = batch["audio_mask"].bool().to(dev)
    loss_v = flow_loss(out["video"], velocity_target(z_v, n_v), v_mask).mean()
    loss_a = (flow_loss(out["audio"], velocity_target(z_a, n_a), has_audio[:, None, None]).sum()
              / has_audio.sum().clamp(min=1))
    losses = {"video": loss_v, "audio": loss_a}
    total = cfg.video_weight * loss_v + cfg.audio_weight * loss_a
    if use_physics:
        d = model.cfg.dit
        targets = physics_targets(batch, z_v.shape[2], z_a.shape[-1], temporal_compression=d.temporal_compression,
                                  sample_rate=d.audio_sample_rate, hop_length=d.audio_hop_length,
                                  audio_compression=d.audio_compression)
        for k, v in physics_losses(out["physics"], targets, cfg.contact_pos_weight).items():
            losses[f"physics_{k}"] = v
            total = total + getattr(cfg, k) * v
    losses["loss"] = total
    return losses
