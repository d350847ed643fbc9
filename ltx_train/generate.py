"""`ltx-generate`: text (+ image) -> mp4 with sound, from a trained DiT checkpoint."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from ltx_train.config import ConfigError, to_dataclass
from ltx_train.hydra_utils import CONF_DIR, check_config, register_resolvers

log = logging.getLogger("ltx_train.generate")
register_resolvers()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def read_first_frame(path: str | Path, height: int, width: int) -> torch.Tensor:
    """First frame of an image or video file -> (3, height, width) in [-1, 1] (resize + centre crop)."""
    import av
    import torch.nn.functional as F
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"image: no such file {path}")
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    x = torch.from_numpy(frame).permute(2, 0, 1).float()[None] / 127.5 - 1.0
    scale = max(height / x.shape[2], width / x.shape[3])
    x = F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
    top, left = (x.shape[2] - height) // 2, (x.shape[3] - width) // 2
    return x[0, :, top:top + height, left:left + width].clamp(-1, 1)


def slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:n] or "clip"


def generate(cfg: DictConfig) -> list[Path]:
    from ltx_train.models.vae.tiling import TileConfig
    from ltx_train.pipeline import LTXPipeline

    check_config(cfg)
    ckpt = Path(cfg.checkpoint)
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint: no such file {ckpt}")
    if cfg.vocoder_checkpoint and not Path(cfg.vocoder_checkpoint).is_file():
        raise ConfigError(f"vocoder_checkpoint: no such file {cfg.vocoder_checkpoint}")
    prompts = list(cfg.prompts) if cfg.prompts else [cfg.prompt]
    device = resolve_device(cfg.device)
    pipe = LTXPipeline.from_checkpoint(ckpt, cfg.vocoder_checkpoint, device=device, use_ema=cfg.use_ema)
    image = read_first_frame(cfg.image, cfg.height, cfg.width) if cfg.image else None
    tile = to_dataclass(TileConfig, cfg.tile, "tile") if cfg.tile else None
    clips = pipe(prompts, seconds=cfg.seconds, fps=cfg.fps, height=cfg.height, width=cfg.width,
                 steps=cfg.steps, guidance_scale=cfg.guidance_scale, sampler=cfg.sampler, seed=cfg.seed,
                 image=image, tile=tile)
    out = Path(cfg.out_dir)
    paths = []
    for i, clip in enumerate(clips):
        p = pipe.save(clip, out / f"{i:02d}_{slug(clip.prompt)}.mp4")
        p.with_suffix(".txt").write_text(clip.prompt, encoding="utf-8")  # read by `ltx-eval task=physics`
        paths.append(p)
        print(f"[ltx-generate] {p}  ({clip.frames.shape[0]} frames, {len(clip.audio) / clip.sample_rate:.2f} s audio)")
    (out / "prompts.json").write_text(json.dumps(
        [{"file": p.name, "prompt": c.prompt, "seed": cfg.seed} for p, c in zip(paths, clips)], indent=2))
    return paths


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="generate")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
