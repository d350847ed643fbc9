"""`ltx-eval task=vae|audio|physics|adherence|i2v|lora`: score trained parts on shards, user videos or generated clips.

(The entry point lives here because ``ltx_train/eval/`` is the package of metrics it calls.)
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ltx_train.config import ConfigError, to_dataclass
from ltx_train.generate import resolve_device
from ltx_train.quiet import silence_library_noise
from ltx_train.hydra_utils import CONF_DIR, build, check_config, register_resolvers

log = logging.getLogger("ltx_train.evaluate")
register_resolvers()
silence_library_noise()
TASKS = ("vae", "audio", "physics", "adherence", "i2v", "lora")


def _need_file(cfg: DictConfig, key: str) -> Path:
    value = OmegaConf.select(cfg, key)
    if not value:
        raise ConfigError(f"task={cfg.task} needs {key}=<path>")
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{key}: no such file {path}")
    return path


def _need_dir(cfg: DictConfig, key: str) -> Path:
    path = Path(OmegaConf.select(cfg, key))
    if not path.is_dir():
        raise ConfigError(f"{key}: no such directory {path}")
    return path


def val_batches(cfg: DictConfig, shards: str | list | None = None, limit: int | None = -1):
    """Validation batches of the data config over ``shards`` (default: its val shards).

    limit: clips read at most; -1 means ``cfg.limit``, None every clip of the shards."""
    overrides = {"val_max_samples": cfg.limit if limit == -1 else limit}
    if shards is not None:
        overrides["val_shards"] = shards
    dm = build(cfg, "data", train_shards=None, **overrides)
    dm.setup("validate")
    return dm.val_dataloader()


def eval_vae(cfg: DictConfig, out: Path, device) -> dict:
    """Reconstruction scores on shards (``limit`` clips), or on EVERY video of ``videos=<folder>``:
    each video is one sample of the val split, decoded as validation decodes (a centred clip of
    ``data.num_frames``); videos too short for that clip are listed in the report's ``skipped``."""
    from ltx_train.data.folder import convert_folder
    from ltx_train.data.skips import recorded_skips, summarise_skips
    from ltx_train.eval.recon import NoClipsError, evaluate_reconstruction
    from ltx_train.models.vae.tiling import TileConfig
    from ltx_train.modules.frozen import load_video_vae

    if cfg.pretrained:  # a pretrained directory's VAE (ltx-export / save_pretrained)
        from ltx_train.pretrained import load_component
        vae = load_component(_need_dir(cfg, "pretrained"), "vae", device=device, expect="VideoVAE")
    else:
        vae = load_video_vae(_need_file(cfg, "checkpoint")).to(device)
    tile = to_dataclass(TileConfig, cfg.tile, "tile") if cfg.tile else None
    with tempfile.TemporaryDirectory() as tmp:
        shards, limit, source = cfg.shards, -1, f"shards {cfg.shards or OmegaConf.select(cfg, 'data.val_shards')}"
        if cfg.videos:  # a folder of user videos: convert to shards first (same decode path as training)
            summary = convert_folder(cfg.videos, tmp, val_fraction=1.0, verbose=True)
            if not summary["written"]["val"]:
                raise ConfigError(f"videos: no readable captioned video in {cfg.videos}")
            shards, limit, source = tmp, None, f"videos {cfg.videos}"  # all of them: limit is for shards
        with recorded_skips() as skips:
            try:
                report = evaluate_reconstruction(vae, val_batches(cfg, shards, limit), out,
                                                 max_videos_to_save=cfg.max_save, tile=tile)
            except NoClipsError as e:
                d = cfg.data  # defaults as in VideoDataModule
                frames, fps = d.get("num_frames", 25), d.get("fps", 24.0)
                hint = "" if skips or not d.get("num_workers") else \
                    " (data.num_workers > 0: the reasons are in the workers' warnings above)"
                raise ConfigError(f"task=vae: no clip of data.num_frames={frames} frames at data.fps={fps} "
                                  f"({frames / fps:.2f} s) could be decoded from {source}: "
                                  f"{summarise_skips(skips)}{hint}") from e
    if skips:  # some samples (e.g. videos shorter than the clip) were not scored: say which, in the report
        report["skipped"] = [{"key": s.key, "reason": s.reason} for s in skips]
        (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=True))
        log.warning("task=vae: %s", summarise_skips(skips))
    return report


def eval_audio(cfg: DictConfig, out: Path, device) -> dict:
    from ltx_train.eval.audio_eval import evaluate_audio
    from ltx_train.modules.frozen import load_audio_vae, load_module
    from ltx_train.modules.vocoder_module import VocoderModule

    if cfg.pretrained:  # a pretrained directory's vocoder and audio VAE, with the model's mel front-end
        from ltx_train.pipeline import LTXVideoPipeline
        pipe = LTXVideoPipeline.from_pretrained(_need_dir(cfg, "pretrained"), device=device)
        if pipe.vocoder is None:
            raise ConfigError(f"pretrained: {cfg.pretrained} has no vocoder (it generates with Griffin-Lim)")
        return evaluate_audio(pipe.vocoder, val_batches(cfg, cfg.shards), pipe.mel, out, max_wavs=cfg.max_save,
                              audio_vae=pipe.audio_vae)
    module = load_module(VocoderModule, _need_file(cfg, "checkpoint"), "vocoder").to(device)  # weights_only=True
    audio_vae = None
    if cfg.audio_vae_checkpoint:
        audio_vae = load_audio_vae(_need_file(cfg, "audio_vae_checkpoint")).to(device)
    return evaluate_audio(module.generator.eval(), val_batches(cfg, cfg.shards), module.mel, out,
                          max_wavs=cfg.max_save, audio_vae=audio_vae)


def _score_clips(cfg: DictConfig, out: Path, run) -> dict:
    """``run(shards, generated, limit, report_path)`` of a clip metric on generated clips and/or real
    annotated shards (the ceiling)."""
    from ltx_train.data.shardlist import resolve_shards

    if not cfg.generated and not cfg.shards:
        raise ConfigError(f"task={cfg.task} needs generated=<folder of mp4 + txt> and/or shards=<annotated shards>")
    if cfg.generated and not Path(cfg.generated).is_dir():
        raise ConfigError(f"generated: no such folder {cfg.generated}")
    shards = resolve_shards(OmegaConf.to_object(cfg.shards) if OmegaConf.is_config(cfg.shards) else cfg.shards,
                            "val") if cfg.shards else None
    return run(shards, cfg.generated, cfg.limit, str(out / "report.json"))


def eval_physics(cfg: DictConfig, out: Path, device) -> dict:
    """Gravity angle, bounces and A/V sync (ltx_train/eval/physics_eval.py)."""
    from ltx_train.eval.physics_eval import run
    return _score_clips(cfg, out, run)


def eval_adherence(cfg: DictConfig, out: Path, device) -> dict:
    """Per-layer prompt adherence (ltx_train/eval/adherence/)."""
    from ltx_train.eval.adherence import run
    return _score_clips(cfg, out, run)


def eval_i2v(cfg: DictConfig, out: Path, device) -> dict:
    """First-frame fidelity and per-frame drift of ``ltx-generate from_shards=...`` clips against their
    source clips, plus the physics report (ltx_train/eval/i2v.py)."""
    from ltx_train.eval.i2v import run
    if not cfg.generated or not cfg.shards:
        raise ConfigError("task=i2v needs generated=<out_dir of ltx-generate from_shards=...> and "
                          "shards=<the shards it continued>")
    return _score_clips(cfg, out, lambda shards, generated, limit, path: run(shards, generated, limit, path,
                                                                                plot=bool(cfg.plot)))


def eval_lora(cfg: DictConfig, out: Path, device) -> dict:
    from ltx_train.eval.lora_effect import default_prompts, weight_sweep
    from ltx_train.lora import parse_lora_spec
    from ltx_train.pipeline import LTXVideoPipeline

    if not cfg.pretrained or not Path(cfg.pretrained).is_dir():
        raise ConfigError(f"task=lora needs pretrained=<dir> (the base), got {cfg.pretrained!r}")
    if not cfg.lora:
        raise ConfigError("task=lora needs lora=[adapter_dir,...] (the adapters whose weight is swept)")
    paths = [p for p, _ in parse_lora_spec(OmegaConf.to_object(cfg.lora) if OmegaConf.is_config(cfg.lora) else cfg.lora)]
    prompts = list(cfg.prompts) if cfg.prompts else default_prompts(cfg.limit, cfg.height, cfg.width)
    pipe = LTXVideoPipeline.from_pretrained(cfg.pretrained, device=device)
    return weight_sweep(pipe, [(f"a{i}", p) for i, p in enumerate(paths)], list(cfg.weights), prompts, out,
                        palette=cfg.palette, steps=cfg.steps, height=cfg.height, width=cfg.width,
                        seconds=cfg.seconds, seed=cfg.seed)


def evaluate(cfg: DictConfig) -> dict:
    check_config(cfg)
    if cfg.task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"vae": eval_vae, "audio": eval_audio, "physics": eval_physics, "adherence": eval_adherence,
              "i2v": eval_i2v, "lora": eval_lora}[cfg.task](
        cfg, out, resolve_device(cfg.device))
    print(f"[ltx-eval] task={cfg.task} report: {out / 'report.json'}")
    print(json.dumps(_summary(cfg.task, report), indent=2, default=str))
    return report


def _summary(task: str, report: dict) -> dict:
    if task == "audio":
        return {"num_clips": report.get("num_clips"), **report.get("rows", {})}
    if task == "lora":
        return {w: {k: v for k, v in r.items() if k.startswith("mean_")} for w, r in report["weights"].items()}
    if task == "i2v":
        return report["summary"]
    if task in ("physics", "adherence"):
        return {k: v.get("summary") for k, v in report.items() if isinstance(v, dict)}
    return {k: report[k] for k in ("psnr", "ssim", "num_clips", "seconds") if k in report}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
