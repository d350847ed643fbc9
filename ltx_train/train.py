"""`ltx-train`: compose conf/, instantiate the LightningModule and DataModule, fit with Lightning.

    ltx-train experiment=vae_tiny                       # the README's CPU job
    ltx-train experiment=dit_pretrain trainer=gpu logger=wandb
    ltx-train -m experiment=vae_tiny model.lr=1e-4,3e-4 logger=wandb  # Hydra multirun: one W&B run per job
    ltx-train experiment=vae_tiny hparams_search=vae_optuna            # Optuna TPE; main returns optimized_metric
    ltx-train experiment=vae_tiny ckpt_path=outputs/vae_tiny/runs/<run>/checkpoints/last.ckpt  # resume

Reliability (experiments/reliability.md): checkpoints are written atomically and hold plain types only
(``AtomicCheckpointIO``); RNG streams and provenance ride along (``RunState``); a resume continues in the
checkpoint's run directory (``resume.in_place``), appending to its CSV log; SIGTERM / SIGUSR1 save and
exit with 128 + signum (``callbacks.preemption``); non-finite steps are skipped (``callbacks.nonfinite``).

Tracking (``tracking.py``): each job's W&B run is named and grouped from the sweep, gets the provenance in
its config, and is finished when the job ends, also when it fails, so the next job of a multirun starts its own.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary, ProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from ltx_train.config import ConfigError
from ltx_train.data.bad_metrics import BadSampleMetrics
from ltx_train.quiet import silence_library_noise
from ltx_train.hydra_utils import CONF_DIR, build, build_all, check_config, check_targets, register_resolvers
from ltx_train.modules.checkpointing import AtomicCheckpointIO
from ltx_train.modules.preemption import Preemption
from ltx_train.modules.run_state import RunState
from ltx_train.modules.summary import ParamSummary
from ltx_train.tracking import finish_wandb, fill_wandb_identity, provenance, run_identity

log = logging.getLogger("ltx_train.train")
register_resolvers()
silence_library_noise()


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit ``cfg.model`` on ``cfg.data``; returns the final logged metrics as floats."""
    check_config(cfg, required=("model", "data", "trainer"))
    # Every constructor argument against its annotation first: a bad value fails before anything is built.
    check_targets(cfg, ("data", "model", "trainer", "callbacks", "logger"))
    resume_in_place(cfg)
    L.seed_everything(cfg.seed, workers=True)
    # Build everything before fitting so a bad config fails in seconds, not after an epoch.
    datamodule = build(cfg, "data")
    module = build(cfg, "model", **_latent_kwargs(cfg, datamodule))
    callbacks = build_all(cfg, "callbacks")
    if hasattr(datamodule, "skipped_by_kind"):  # data/skipped_<kind> metrics, whatever the callbacks group
        callbacks.append(BadSampleMetrics())
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a progress bar callback then
        callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
    if cfg.trainer.get("enable_model_summary", True) and not any(isinstance(cb, ModelSummary) for cb in callbacks):
        callbacks.append(ParamSummary())   # Lightning's own prints a FLOPs column of zeros (modules/summary.py)
    identity = run_identity(cfg)
    fill_wandb_identity(cfg, identity)   # name / group / job_type of this job, where the config has none
    plain_cfg = OmegaConf.to_container(cfg, resolve=True)
    callbacks.append(RunState(config=plain_cfg, output_dir=str(cfg.paths.output_dir)))
    loggers = build_all(cfg, "logger")
    try:
        trainer = _fit(cfg, module, datamodule, callbacks, loggers, plain_cfg, identity)
    except BaseException as e:
        if not isinstance(e, (SystemExit, KeyboardInterrupt)):  # in the job's log: a sweep goes on
            log.error("run failed: %s: %s", type(e).__name__, e)
        finish_wandb(loggers, e)
        raise
    finish_wandb(loggers)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    out = Path(cfg.paths.output_dir)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    ckpt_cb = trainer.checkpoint_callback
    last = getattr(ckpt_cb, "last_model_path", "") if ckpt_cb else ""
    log.info("outputs in %s; last checkpoint %s", out, last or "(none)")
    print(f"[ltx-train] outputs: {out}")
    if last:
        print(f"[ltx-train] last checkpoint: {last}")
    print("[ltx-train] metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    return metrics


def _latent_kwargs(cfg: DictConfig, datamodule) -> dict:
    """``data=latents``: the model is told the cache (its encoders' shapes), so it loads no encoder."""
    from ltx_train.data.latents import LatentDataModule
    if not isinstance(datamodule, LatentDataModule) or cfg.model.get("latents"):
        return {}
    import inspect
    from hydra.utils import get_class
    target = cfg.model.get("_target_", "?")
    if "latents" not in inspect.signature(get_class(target)).parameters:
        raise ConfigError(f"data=latents holds latents for the DiT stage and LoRA (model=dit / lora); "
                          f"model._target_={target} trains on pixels: use data=synthetic or data=synthetic_live")
    return {"latents": datamodule.path}


def _check_strategy(trainer: L.Trainer, module) -> None:
    """Refuse before training what a strategy cannot run, naming the stage, instead of Lightning's error
    mid-setup: DeepSpeed steps one optimiser, so a GAN stage runs under it with ``model.gan_update=
    simultaneous`` (``modules/gan.py``) only. Under DDP a GAN stage's alternating steps leave the
    discriminator's weights without gradients (and the other way round), which DDP's reducer must be told
    to expect. A simultaneous GAN clips each network at ``model.grad_clip`` (DeepSpeed: both together).
    A LoRA base held in bf16 (``model.lora.base_dtype``) meets fp32 activations without autocast."""
    from lightning.pytorch.strategies import DDPStrategy

    from ltx_train.parallelize import is_deepspeed
    base_dtype = getattr(getattr(module, "lora_cfg", None), "base_dtype", None)
    if base_dtype is not None and str(trainer.precision) in ("32-true", "32", "64-true", "64"):
        raise ConfigError(f"model.lora.base_dtype={base_dtype} holds the frozen base in {base_dtype}, which needs "
                          f"autocast: set trainer.precision=bf16-mixed (got {trainer.precision}), or "
                          "model.lora.base_dtype=null")
    if isinstance(trainer.strategy, DDPStrategy) and not module.automatic_optimization:
        trainer.strategy._ddp_kwargs.setdefault("find_unused_parameters", True)   # Lightning's DDP kwargs
    if is_deepspeed(trainer) and not module.automatic_optimization:
        raise ConfigError(f"trainer=deepspeed_* steps one optimiser; {type(module).__name__} trains a generator and a "
                          "GAN discriminator with two (model.gan_update=alternating): set model.gan_update="
                          "simultaneous (one optimiser, one backward per batch), or train it with trainer=fsdp / ddp")
    if getattr(module, "simultaneous_gan", False):
        if trainer.gradient_clip_val is not None:
            raise ConfigError(f"{type(module).__name__} with model.gan_update=simultaneous clips each network at "
                              f"model.grad_clip; set trainer.gradient_clip_val=null (got {trainer.gradient_clip_val})")
        clip = module.hparams.get("grad_clip")
        if is_deepspeed(trainer) and clip:
            trainer.gradient_clip_val = float(clip)   # read into DeepSpeed's config at setup
            print(f"[ltx-train] DeepSpeed clips the gradients of generator and discriminator together at "
                  f"{float(clip)} (model.grad_clip)")


def _fit(cfg: DictConfig, module, datamodule, callbacks: list, loggers: list, plain_cfg: dict,
         identity: dict) -> L.Trainer:
    trainer: L.Trainer = build(cfg, "trainer", callbacks=callbacks, logger=loggers or False,
                               **_checkpoint_plugins(cfg))
    _check_strategy(trainer, module)
    # the resolved config plus git commit, overrides, versions and data manifests (W&B config, hparams.yaml)
    hparams = {**plain_cfg, "provenance": provenance(cfg, identity)}
    for lg in loggers:
        lg.log_hyperparams(hparams)
    preempt = next((cb for cb in callbacks if isinstance(cb, Preemption)), None)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=_ckpt_for(trainer, cfg.get("ckpt_path")))
    except SIGTERMException:  # Lightning's stop after SIGTERM/SIGUSR1 is a SystemExit with status 0
        _stopped_by_signal(trainer, preempt)
    if preempt is not None and preempt.received is not None:  # the signal came during the last step
        _stopped_by_signal(trainer, preempt)
    if cfg.get("test_after_fit"):
        trainer.validate(module, datamodule=datamodule)
    return trainer


def _ckpt_for(trainer: L.Trainer, ckpt: str | None) -> str | None:
    """A DeepSpeed checkpoint directory resumed under another strategy: merged into one file beside it
    first (``modules.zero_checkpoint``), written once and reused."""
    from ltx_train.modules.zero_checkpoint import is_zero_checkpoint, save_converted
    from ltx_train.parallelize import is_deepspeed
    if not ckpt or is_deepspeed(trainer) or not is_zero_checkpoint(ckpt):
        return ckpt
    src = Path(ckpt).resolve()
    out = src.with_name(src.name + ".merged.ckpt")
    if not out.is_file() or out.stat().st_mtime < max(f.stat().st_mtime for f in src.rglob("*") if f.is_file()):
        save_converted(src, out)
        print(f"[ltx-train] merged the DeepSpeed checkpoint {ckpt} into {out} (weights, EMA, Adam moments, loops)")
    return str(out)


def _stopped_by_signal(trainer: L.Trainer, preempt: Preemption | None) -> None:
    saved = preempt.saved_path if preempt else None
    print(f"[ltx-train] stopped by a signal at step {trainer.global_step}; checkpoint: {saved or '(none)'}; "
          "resume with ckpt_path=<run>/checkpoints/last.ckpt")
    raise SystemExit(preempt.exit_code if preempt else 143) from None


def _checkpoint_plugins(cfg: DictConfig) -> dict:
    """Atomic, plain-typed checkpoint files, unless the strategy writes its own (DeepSpeed: a directory)."""
    strategy = str(OmegaConf.to_container(cfg.trainer, resolve=True).get("strategy", ""))
    if "plugins" in cfg.trainer or "deepspeed" in strategy.lower():
        return {}
    return {"plugins": [AtomicCheckpointIO()]}


def resume_in_place(cfg: DictConfig) -> None:
    """With ``ckpt_path`` and ``resume.in_place``: write into the checkpoint's run directory, appending to
    its CSV log (same logger version). New checkpoints never overwrite old ones there: names that exist
    get Lightning's ``-v1`` suffix (``callbacks.model_checkpoint.enable_version_counter=false``
    overwrites)."""
    ckpt = cfg.get("ckpt_path")
    if not ckpt or ckpt in ("last", "hpc", "best") or not OmegaConf.select(cfg, "resume.in_place", default=False):
        return
    path = Path(ckpt)
    from ltx_train.modules.zero_checkpoint import client_state_file, is_zero_checkpoint
    zero = is_zero_checkpoint(path)
    if not (path.is_file() or zero):
        raise ConfigError(f"ckpt_path: no such checkpoint file {path}")
    try:  # mmap: only the metadata pages are read, not the weights
        # (a DeepSpeed directory: its rank-0 model-states file, which DeepSpeed writes with pickles)
        meta = torch.load(client_state_file(path) if zero else path, map_location="cpu", weights_only=not zero,
                          mmap=True).get("ltx_train") or {}
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported with its path
        raise ConfigError(f"ckpt_path: cannot read {path} with weights_only=True: {e}") from e
    # where the checkpoint is now (run directories get moved and copied), else where it was written
    run_dir = str(path.parent.parent) if path.parent.name == "checkpoints" else meta.get("output_dir")
    if run_dir is None or not Path(run_dir).is_dir():
        log.warning("resume: run directory of %s not found; writing to %s", path, cfg.paths.output_dir)
        return
    cfg.paths.output_dir = run_dir
    versions = {c["name"]: c["version"] for c in meta.get("csv_loggers", [])}
    for key, node in (cfg.get("logger") or {}).items():
        if str(node.get("_target_", "")).endswith("CSVLogger") and node.get("version") is None:
            name = node.get("name", "lightning_logs")
            if name in versions:
                OmegaConf.update(cfg, f"logger.{key}.version", versions[name], force_add=True)
    # Lightning warns of a non-empty checkpoint directory: here it holds this run's own checkpoints
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    print(f"[ltx-train] resuming {path} in its run directory {run_dir}")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return objective(cfg, metrics)


def objective(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """The value of ``optimized_metric`` that Hydra's sweepers (``hparams_search``) minimise/maximise.

    A diverged run returns NaN, which the Optuna sweeper records as a failed trial; a metric that the
    run never logged is a config error naming the key and the metrics there are."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric: {name!r} was not logged by this run; logged: "
                          f"{', '.join(sorted(metrics)) or '(nothing)'}")
    return metrics[name]


if __name__ == "__main__":
    main()
