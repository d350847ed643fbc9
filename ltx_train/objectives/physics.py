"""Physics auxiliary objective: latent-rate targets from a batch's annotations, and masked losses.

The predictions come from ``PhysicsHeads`` (``ltx_train.models.dit.physics_heads``). Every loss is
masked by ``ann_mask`` (and ``audio_mask`` for audio contacts): a batch without annotations gives
exactly 0 for each loss (and a zero gradient), never NaN.

Latent-rate targets come from the per-frame annotations through ``ltx_train.timing``: a video
latent's centre target is the mean of the centres over the frames it covers (its time is the mean
time of those frames), its contact target is 1 if any covered frame has a contact; a contact at frame
f (time f / fps, within half a frame of the physical instant) marks the audio latent whose span
contains that time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F



def physics_targets(batch: dict, num_video_latents: int, num_audio_latents: int, *,
                    temporal_compression: int, sample_rate: int, hop_length: int,
                    audio_compression: int) -> dict:
    """Latent-rate targets and masks from a batch (``data/README.md`` contract).

    Uses ``gravity (B, 2)``, ``light (B, 3)``, ``centers (B, T, K, 2)``, ``obj_mask (B, K)``,
    ``contacts (B, T)``, ``fps`` (float, list or ``(B,)`` tensor), ``ann_mask (B,)``, ``audio_mask (B,)``
    (optional). Targets are built on the device of ``contacts``. Returns targets
    ``centers (B, Tv, K, 2)``, ``contact_video (B, Tv)``, ``contact_audio (B, Ta)`` plus the masks
    ``ann_mask (B,)``, ``obj_mask (B, K)``, ``frame_mask (B, Tv)`` (latents with covered frames, and
    annotated), ``audio_mask (B,)`` (annotated and with audio).
    """
    centers, contacts = batch["centers"].float(), batch["contacts"].float()
    b, t = contacts.shape
    device = contacts.device
    ann = batch["ann_mask"].bool().to(device)
    # (Tv, T) frame -> latent assignment, from the one time-axis module
    # (timing.video_latent_index as tensor ops: a host list copied to the GPU would wait for it)
    frames = torch.arange(t, device=device)
    lat = torch.where(frames == 0, 0, torch.div(frames - 1, temporal_compression, rounding_mode="floor") + 1)
    assign = (lat[None, :] == torch.arange(num_video_latents, device=device)[:, None]).float()
    count = assign.sum(1)                                                   # (Tv,)
    lat_centers = torch.einsum("jf,bfkc->bjkc", assign, centers) / count.clamp(min=1)[None, :, None, None]
    contact_video = (assign[None] * contacts[:, None, :]).amax(-1).clamp(max=1.0)

    # (B, T) audio latent of each frame, as timing.audio_latent_index(f / fps, ...): float64 tensor ops round
    # exactly like Python floats, and no device-to-host sync is needed. Out-of-range latents go to an extra
    # last column, dropped at the end.
    fps = torch.as_tensor(batch["fps"], dtype=torch.float64, device=device).reshape(-1).expand(b)
    seconds = torch.arange(t, dtype=torch.float64, device=device)[None, :] / fps[:, None]
    k = (seconds * sample_rate // (hop_length * audio_compression)).long().clamp(max=num_audio_latents)
    contact_audio = torch.zeros(b, num_audio_latents + 1, device=device)
    contact_audio.scatter_reduce_(1, k, (contacts > 0).to(contact_audio.dtype), reduce="amax")
    contact_audio = contact_audio[:, :num_audio_latents]

    audio_mask = batch.get("audio_mask")
    audio_mask = torch.ones_like(ann) if audio_mask is None else audio_mask.bool().to(device)
    return {
        "gravity": batch["gravity"].float(), "light": batch["light"].float(),
        "centers": lat_centers, "contact_video": contact_video, "contact_audio": contact_audio,
        "ann_mask": ann, "obj_mask": batch["obj_mask"].bool().to(device) & ann[:, None],
        "frame_mask": (count > 0)[None, :] & ann[:, None], "audio_mask": audio_mask & ann,
    }


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` (broadcastable) is True; exactly 0 when nothing is masked in.

    ``where`` rather than multiply, so non-finite values in masked-out entries cannot leak as NaN.
    """
    mask = mask.expand_as(values)
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1)


def physics_losses(preds: dict, targets: dict, contact_pos_weight: float = 1.0) -> dict:
    """Named scalar losses (unweighted): gravity (1 - cos), light (MSE), centers (MSE),
    contact_video and contact_audio (BCE with logits; ``contact_pos_weight`` up-weights the rare
    contact latents)."""
    ann = targets["ann_mask"]
    pos_weight = torch.full((), float(contact_pos_weight), device=ann.device)
    cos = F.cosine_similarity(preds["gravity"], targets["gravity"].to(preds["gravity"]), dim=-1, eps=1e-6)
    light = (preds["light"] - targets["light"].to(preds["light"])).pow(2)
    centers = (preds["centers"] - targets["centers"].to(preds["centers"])).pow(2)
    bce_v, bce_a = (F.binary_cross_entropy_with_logits(preds[k], targets[k].to(preds[k]), pos_weight=pos_weight,
                                                       reduction="none") for k in ("contact_video", "contact_audio"))
    center_mask = targets["frame_mask"][:, :, None, None] & targets["obj_mask"][:, None, :, None]
    return {
        "gravity": masked_mean(1.0 - cos, ann),
        "light": masked_mean(light, ann[:, None]),
        "centers": masked_mean(centers, center_mask),
        "contact_video": masked_mean(bce_v, targets["frame_mask"]),
        "contact_audio": masked_mean(bce_a, targets["audio_mask"][:, None]),
    }
