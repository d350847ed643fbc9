"""`ltx-generate`: text (+ image) -> mp4 with sound, from a pretrained directory or a DiT checkpoint.

The model: ``pretrained=<dir>`` (``ltx-export`` / ``save_pretrained``; optionally with LoRA adapters,
``lora='[style_dir:0.8,motion_dir:0.6]'``), or ``checkpoint=<dit.ckpt>`` [+ ``vocoder_checkpoint``],
converted in memory as ``ltx-export`` would. Four ways to give the prompts (exactly one):

    ltx-generate pretrained=<dir> prompt="A red rubber ball falls ..." [image=first_frame.png]
    ltx-generate pretrained=<dir> prompts='["prompt one","prompt two"]' [image=first_frame.png]
    ltx-generate pretrained=<dir> prompts_file=prompts.txt batch_size=8   # one prompt a line
    ltx-generate pretrained=<dir> from_shards='data/shards/synthetic/val-*.tar' limit=16

``batch_size`` samples that many prompts at a time (default: all at once), with a progress bar over the
batches; each prompt's noise is drawn as one call would draw it, so the clips do not depend on it.
A prompts file holds one prompt a line; blank lines and lines starting with ``#`` are skipped.

``image`` conditions every prompt on the same first frame (image-to-video). ``from_shards`` is the
image-to-video *evaluation* mode: it continues held-out clips. The prompts are the captions of the
first ``limit`` clips of the shards (shard order, deterministic; a dataset folder means its val split),
and each prompt is conditioned on its own clip's first frame, decoded as validation decodes clips
(``VideoDataModule``'s val stream: centred clip, resized and centre-cropped to ``height`` x ``width``,
``pipe.num_frames(seconds, fps)`` frames, so clips shorter than the generated length are skipped).
``prompt``, ``prompts`` and ``image`` must then be left unset.

Output, in ``out_dir``: ``NN_<slug>.mp4`` with the prompt beside it in ``NN_<slug>.txt`` (what
``ltx-eval task=physics generated=<out_dir>`` reads), and ``prompts.json``: per clip its file, prompt,
seed and ``image_to_video``; from shards also the source sample ``key`` and shard ``url``, and the
``num_frames``, ``fps``, ``height`` and ``width`` its source clip was decoded at (``ltx-eval task=i2v``
decodes the source again with them to compare the continuation with the real one).
"""
from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from ltx_train.config import ConfigError, to_dataclass, to_plain
from ltx_train.quiet import silence_library_noise
from ltx_train.hydra_utils import CONF_DIR, check_config, register_resolvers
from ltx_train.media import MediaError, read_first_frame

log = logging.getLogger("ltx_train.generate")
register_resolvers()
silence_library_noise()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:n] or "clip"


def held_out_batches(shards, limit: int | None, num_frames: int, fps: float, height: int, width: int):
    """The validation stream of ``shards`` (its first ``limit`` decodable clips, None: all) at this clip
    geometry: the decode ``from_shards`` conditions on, shared with ``ltx-eval task=i2v``."""
    from ltx_train.data.datamodule import VideoDataModule

    dm = VideoDataModule(val_shards=shards, num_frames=num_frames, fps=fps, height=height, width=width,
                         batch_size=min(limit or 8, 8), val_max_samples=limit, num_workers=0)
    return dm.val_dataloader()


def held_out_clips(shards, limit: int, num_frames: int, fps: float, height: int, width: int) -> dict:
    """The first ``limit`` decodable clips of ``shards`` in shard order, decoded as validation does.

    Returns {"key", "url", "caption": lists, "image": (N, 3, height, width) first frames in [-1, 1]}.
    """
    out = {"key": [], "url": [], "caption": [], "image": []}
    for batch in held_out_batches(shards, limit, num_frames, fps, height, width):
        for name in ("key", "url", "caption"):
            out[name] += list(batch[name])
        out["image"].append(batch["video"][:, :, 0])  # only frame 0 conditions; the rest is the real continuation
    if not out["key"]:
        raise ConfigError(f"from_shards: no decodable clip of {num_frames} frames ({num_frames / fps:.2f} s at "
                          f"{fps} fps) in {shards!r}; shorten seconds= or check the shards")
    out["image"] = torch.cat(out["image"])
    return {k: v[:limit] for k, v in out.items()}


def _prompt_source(cfg: DictConfig) -> tuple[list[str] | None, object]:
    """(prompts, None) for text prompts, or (None, shard spec) for ``from_shards``; checks the keys
    that choose the mode before anything is loaded."""
    from ltx_train.data.shardlist import resolve_shards

    spec = to_plain(cfg.get("from_shards"))
    pf = cfg.get("prompts_file")
    if pf:
        other = [k for k in ("prompt", "prompts", "from_shards") if cfg.get(k) not in (None, "")]
        if other:
            raise ConfigError(f"prompts_file gives the prompts; do not also give {', '.join(other)}")
        path = Path(pf)
        if not path.is_file():
            raise ConfigError(f"prompts_file: no such file {path}")
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        prompts = [ln for ln in lines if ln and not ln.startswith("#")]
        if not prompts:
            raise ConfigError(f"prompts_file: {path} holds no prompt (one a line; '#' lines are comments)")
        return prompts, None
    if spec is None:
        if cfg.prompts:
            return [str(p) for p in cfg.prompts], None
        if cfg.prompt:
            return [str(cfg.prompt)], None
        raise ConfigError('no prompt: give prompt="...", prompts=[...] or from_shards=<shard spec>')
    given = [k for k in ("prompt", "prompts", "image") if cfg.get(k) not in (None, "")]
    if given:
        raise ConfigError(f"from_shards takes each prompt and first frame from the shards; do not also give "
                          f"{', '.join(given)} (leave {' / '.join(given)} unset, or drop from_shards)")
    limit = cfg.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit: expected an integer >= 1 (clips taken from from_shards), got {limit!r}")
    try:
        resolve_shards(spec, "val")
    except FileNotFoundError as e:
        raise ConfigError(f"from_shards: {e}") from e
    return None, spec


def load_pipeline(cfg: DictConfig, device: torch.device, offload_to: torch.device | None = None):
    """The pipeline named by ``pretrained`` or ``checkpoint`` (exactly one), with ``lora`` applied, placed
    by ``device_map`` or offloaded to ``offload_to`` (``offload=true``; then ``device`` is the CPU)."""
    from ltx_train.export import pipeline_from_checkpoints
    from ltx_train.pipeline import LTXVideoPipeline

    if bool(cfg.get("pretrained")) == bool(cfg.get("checkpoint")):
        raise ConfigError("give exactly one of pretrained=<dir> (ltx-export) or checkpoint=<dit.ckpt>")
    if cfg.get("pretrained"):
        if not Path(cfg.pretrained).is_dir():
            raise ConfigError(f"pretrained: no such directory {cfg.pretrained}")
        if cfg.vocoder_checkpoint:
            raise ConfigError("vocoder_checkpoint goes with checkpoint=; a pretrained directory has its own vocoder")
        pipe = LTXVideoPipeline.from_pretrained(cfg.pretrained, device=device)
    else:
        ckpt = Path(cfg.checkpoint)
        if not ckpt.is_file():
            raise ConfigError(f"checkpoint: no such file {ckpt}")
        if cfg.vocoder_checkpoint and not Path(cfg.vocoder_checkpoint).is_file():
            raise ConfigError(f"vocoder_checkpoint: no such file {cfg.vocoder_checkpoint}")
        pipe = pipeline_from_checkpoints(ckpt, cfg.vocoder_checkpoint, use_ema=cfg.use_ema, device=device)
    if cfg.get("lora"):
        from ltx_train.lora import apply_lora_spec
        apply_lora_spec(pipe, to_plain(cfg.lora))
    if cfg.get("offload") and cfg.get("device_map"):
        raise ConfigError("give at most one of offload=true (one device, parts moved in while they run) and device_map=")
    if cfg.get("device_map"):
        try:
            pipe.place(to_plain(cfg.device_map))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    elif cfg.get("offload"):
        pipe.enable_model_cpu_offload(offload_to or device)
    if cfg.get("encoding_cache"):
        pipe.enable_encoding_cache(cfg.encoding_cache, max_gib=float(cfg.get("encoding_cache_gib") or 2.0))
    if cfg.get("quantize"):
        if cfg.get("lora"):   # adapters are merged into the weights first: quantized weights take no adapter
            pipe.fuse_lora()
            pipe.unload_lora_weights(keep_fused=True)
        r = pipe.quantize(cfg.quantize)
        print(f"[ltx-generate] {r['mode']}: {r['layers']} linear layers, model weights "
              f"{r['bytes_before'] / 2**20:.1f} -> {r['bytes_after'] / 2**20:.1f} MiB")
    return pipe


def check_settings(cfg: DictConfig) -> None:
    """Impossible generation settings fail before anything loads, naming the key."""
    for key in ("seconds", "fps"):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ConfigError(f"{key}: expected a positive number, got {v!r}")
    for key in ("steps", "height", "width"):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{key}: expected a positive integer, got {v!r}")
    if cfg.sampler not in ("euler", "heun"):
        raise ConfigError(f"sampler: expected euler or heun, got {cfg.sampler!r}")
    from ltx_train.quantize import MODES
    if cfg.get("quantize") not in (None, *MODES):
        raise ConfigError(f"quantize: expected null or one of {MODES}, got {cfg.get('quantize')!r}")
    bs = cfg.get("batch_size")
    if bs is not None and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
        raise ConfigError(f"batch_size: expected an integer >= 1 or null (all prompts at once), got {bs!r}")


def generate(cfg: DictConfig) -> list[Path]:
    from ltx_train.models.vae.tiling import TileConfig

    check_config(cfg)
    check_settings(cfg)
    prompts, shards = _prompt_source(cfg)
    device = resolve_device(cfg.device)
    pipe = load_pipeline(cfg, torch.device("cpu") if cfg.get("offload") else device, offload_to=device)
    sc = pipe.vae.spatial_compression
    if cfg.height % sc or cfg.width % sc:
        raise ConfigError(f"height={cfg.height}, width={cfg.width}: must be multiples of the VAE's {sc}x "
                          f"spatial compression")
    sources = None
    if shards is not None:
        geometry = dict(num_frames=pipe.num_frames(cfg.seconds, cfg.fps), fps=float(cfg.fps), height=cfg.height,
                        width=cfg.width)   # of the source clips: recorded for ltx-eval task=i2v
        sources = held_out_clips(shards, cfg.limit, **geometry)
        prompts, image = sources["caption"], sources["image"]
        log.info("image-to-video from %d held-out clips of %s", len(prompts), shards)
    else:
        image = None
        if cfg.image:
            try:
                image = read_first_frame(cfg.image, cfg.height, cfg.width)
            except MediaError as e:
                raise ConfigError(f"image: {e}") from e
    tile = to_dataclass(TileConfig, cfg.tile, "tile") if cfg.tile else None
    start = time.perf_counter()
    clips = pipe(prompts, seconds=cfg.seconds, fps=cfg.fps, height=cfg.height, width=cfg.width,
                 steps=cfg.steps, guidance_scale=cfg.guidance_scale, sampler=cfg.sampler, seed=cfg.seed,
                 image_guidance_scale=cfg.get("image_guidance_scale", 1.0), image=image, tile=tile,
                 batch_size=cfg.get("batch_size"), progress=True)
    took = time.perf_counter() - start
    frames = sum(c.frames.shape[0] for c in clips)
    print(f"[ltx-generate] {len(clips)} clips in {took:.1f} s: {len(clips) / took:.3f} clips/s, "
          f"{frames / took:.1f} frames/s ({cfg.height}x{cfg.width}, {cfg.steps} steps, batch "
          f"{cfg.get('batch_size') or len(clips)}, {pipe.device})")
    out = Path(cfg.out_dir)
    digits = max(2, len(str(len(clips) - 1)))  # file names sort in prompt order (ltx-eval reads them sorted)
    paths, records = [], []
    for i, clip in enumerate(clips):
        p = pipe.save(clip, out / f"{i:0{digits}d}_{slug(clip.prompt)}.mp4")
        p.with_suffix(".txt").write_text(clip.prompt, encoding="utf-8")  # read by `ltx-eval task=physics`
        paths.append(p)
        record = {"file": p.name, "prompt": clip.prompt, "seed": cfg.seed, "image_to_video": image is not None}
        if sources is not None:
            record.update(key=sources["key"][i], url=sources["url"][i], **geometry)
        elif cfg.image:
            record["image"] = str(cfg.image)
        records.append(record)
        print(f"[ltx-generate] {p}  ({clip.frames.shape[0]} frames, {len(clip.audio) / clip.sample_rate:.2f} s audio)")
    (out / "prompts.json").write_text(json.dumps(records, indent=2))
    if pipe.encoding_cache is not None:
        st = pipe.encoding_cache.stats()
        print(f"[ltx-generate] encoding cache {st['dir']}: {st['hits']} hits, {st['misses']} misses, "
              f"{st['files']} entries, {st['bytes'] / 2**20:.1f} of {st['max_bytes'] / 2**20:.0f} MiB")
    return paths


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="generate")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
