"""Named JointDiT sizes. Parameter counts (``JointDiT(preset(name)).num_params()``, default inputs):

| name   | depth x width (heads) | video ch | params  | use |
|--------|-----------------------|----------|---------|-----|
| tiny   | 2 x 128 (4)           | 16       | 0.65 M  | CPU tests, smoke runs with the tiny VAE |
| mini   | 8 x 256 (4)           | 16       | 6.4 M   | the shipped reference base; CPU LoRA finetuning |
| small  | 16 x 1024 (16)        | 128      | 214 M   | single-GPU research runs |
| 1b     | 20 x 2048 (16)        | 128      | 1.06 B  | the MFU benchmark size (head dim 128) |
| ltx2b  | 28 x 2048 (32)        | 128      | 1.46 B  | LTX-Video v0.9 trunk (28 x 2048, 32 x 64 heads) |
| 4b     | 40 x 3072 (24)        | 128      | 4.64 B  | the one-GPU ZeRO-3 + offload probe (experiments/deepspeed_one_gpu.md) |

``ltx2b`` has LTX-Video's depth, width and heads; LTX-Video's 1.9 B includes per-block cross-attention
to T5 (4 D^2 per block) that this single-stream model replaces by joint self-attention, so ours is
smaller. With ``modulation="block"`` (DiT-style per-block adaLN) add 6 D^2 per block.
The ``text_dim`` default matches the ``baseline`` text connector (width 256); set it to the
connector's ``output_dim`` (512 for ``ltx23``).

Step times and MFU of ``1b`` and ``ltx2b`` beside diffusers' transformers of the same size are in
``bench/README.md`` and ``experiments/gpu_speed.md`` (figures age; they are kept with their commands).
"""
from __future__ import annotations

from dataclasses import replace

from ltx_train.models.dit.dit import JointDiTConfig

PRESETS: dict[str, JointDiTConfig] = {
    # tiny VAE: 16 channels, 4x temporal compression (DESIGN.md)
    "tiny": JointDiTConfig(video_channels=16, audio_channels=8, width=128, depth=2, heads=4, temporal_compression=4),
    # the shipped reference base (assets/pretrained/): the smallest that draws the synthetic world, and
    # small enough to finetune with LoRA on a laptop CPU
    "mini": JointDiTConfig(video_channels=16, audio_channels=8, width=256, depth=8, heads=4, temporal_compression=4),
    "small": JointDiTConfig(video_channels=128, audio_channels=8, width=1024, depth=16, heads=16),
    "1b": JointDiTConfig(video_channels=128, audio_channels=8, width=2048, depth=20, heads=16),
    "ltx2b": JointDiTConfig(video_channels=128, audio_channels=8, width=2048, depth=28, heads=32),
    # past what one H200 trains without sharding at batch 8 (experiments/deepspeed_one_gpu.md): 4.6 B
    "4b": JointDiTConfig(video_channels=128, audio_channels=8, width=3072, depth=40, heads=24),
}


def preset(name: str, **overrides) -> JointDiTConfig:
    """A fresh copy of the named config with ``overrides`` applied (e.g. ``preset("tiny", depth=4)``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown DiT preset {name!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)
