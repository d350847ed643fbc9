"""`ltx-train`: compose conf/, instantiate the LightningModule and DataModule, fit with Lightning.

    ltx-train experiment=vae_tiny                       # the README's CPU job
    ltx-train experiment=dit_pretrain trainer=gpu logger=wandb
    ltx-train -m experiment=vae_tiny model.lr=1e-4,3e-4  # Hydra multirun sweep
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from ltx_train.data.bad_metrics import BadSampleMetrics
from ltx_train.hydra_utils import CONF_DIR, build, build_all, check_config, check_targets, register_resolvers

log = logging.getLogger("ltx_train.train")
register_resolvers()


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit ``cfg.model`` on ``cfg.data``; returns the final logged metrics as floats."""
    check_config(cfg, required=("model", "data", "trainer"))
    # Every constructor argument against its annotation first: a bad value fails before anything is built.
    check_targets(cfg, ("data", "model", "trainer", "callbacks", "logger"))
    L.seed_everything(cfg.seed, workers=True)
    # Build everything before fitting so a bad config fails in seconds, not after an epoch.
    datamodule = build(cfg, "data")
    module = build(cfg, "model")
    callbacks = build_all(cfg, "callbacks")
    if hasattr(datamodule, "skipped_by_kind"):  # data/skipped_<kind> metrics, whatever the callbacks group
        callbacks.append(BadSampleMetrics())
    loggers = build_all(cfg, "logger")
    trainer: L.Trainer = build(cfg, "trainer", callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    if cfg.get("test_after_fit"):
        trainer.validate(module, datamodule=datamodule)

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


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    # Hydra sweepers (hparams_search) minimise/maximise the value returned here.
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
