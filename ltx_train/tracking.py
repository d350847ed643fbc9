"""Who a run is and what it ran on, for W&B and the CSV hparams: one W&B run per job, also in sweeps.

- ``run_identity``: W&B ``name`` (task + the overridden keys), ``group`` (the sweep's directory, so all
  jobs of a multirun are grouped) and ``job_type`` (the stage: vae, audio_vae, vocoder, dit, lora).
- ``provenance``: git commit + dirty flag, the overrides, package versions, the data manifests' hashes.
- ``fill_wandb_identity``: puts the identity into ``logger.<wandb>`` wherever the config leaves it null.
- ``finish_wandb``: ends the W&B run of each WandbLogger. Lightning never calls ``wandb.finish``, and a
  WandbLogger created while ``wandb.run`` is alive reuses it: without this the second job of a
  multirun (one process, Hydra's basic launcher) logs into the first job's run.
"""
from __future__ import annotations

import glob
import hashlib
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PACKAGES = ("ltx-train", "torch", "lightning", "hydra-core", "omegaconf", "wandb", "torchmetrics", "peft",
            "transformers", "webdataset", "numpy", "hydra-optuna-sweeper", "optuna", "deepspeed")
# overrides that say where things are, not what is trained: left out of run names
_PLACE_KEYS = ("paths.", "hydra.", "logger.", "data.train_shards", "data.val_shards", "ckpt_path", "base")


def _hydra():
    from hydra.core.hydra_config import HydraConfig
    return HydraConfig.get() if HydraConfig.initialized() else None


def stage_of(cfg: DictConfig) -> str:
    """``ltx_train.modules.vae_module.VAEModule`` -> ``vae``; the W&B job type."""
    target = str(OmegaConf.select(cfg, "model._target_", default="") or "")
    module = target.rsplit(".", 2)[-2] if target.count(".") >= 2 else target
    return module.removesuffix("_module") or "train"


def _name_overrides(overrides: list[str]) -> list[str]:
    keep = []
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if "." in key and not key.startswith(_PLACE_KEYS) and "/" not in value:
            keep.append(f"{key}={value}")
    return keep


def _swept_keys(hc) -> set[str]:
    """Keys the sweep varies: ``hydra.sweeper.params`` plus the sweep overrides of the command line
    (``model.lr=1e-3,2e-3``, ``interval(...)``), as Hydra recorded them in ``<sweep dir>/multirun.yaml``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    keys = {str(k).lstrip("+~") for k in (OmegaConf.select(hc, "sweeper.params", default=None) or {})}
    sweep_cfg = Path(str(hc.sweep.dir)) / "multirun.yaml"
    if sweep_cfg.is_file():
        given = OmegaConf.load(sweep_cfg).hydra.overrides.task
        keys |= {o.get_key_element().lstrip("+~") for o in OverridesParser.create().parse_overrides(list(given))
                 if o.is_sweep_override()}
    return keys


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """{name, group, job_type, overrides, job_num}; without a Hydra job (``compose``): the task name only."""
    hc = _hydra()
    task = str(cfg.get("task_name", "train"))
    ident: dict[str, Any] = {"name": task, "group": None, "job_type": stage_of(cfg), "overrides": [],
                             "job_num": None}
    if hc is None:
        return ident
    from hydra.types import RunMode
    overrides = list(hc.overrides.task)
    ident["overrides"] = overrides
    shown = _name_overrides(overrides)
    if hc.mode == RunMode.MULTIRUN:
        swept = _swept_keys(hc)
        pairs = (o.lstrip("+~").partition("=") for o in overrides)
        shown = [f"{k}={v}" for k, _, v in pairs if k in swept] or shown
        sweep = Path(str(hc.sweep.dir))
        try:  # outputs/<task>/multiruns/<time> -> <task>/multiruns/<time>
            ident["group"] = str(sweep.resolve().relative_to(Path(str(cfg.paths.log_dir)).resolve()))
        except ValueError:
            ident["group"] = str(sweep)
        ident["job_num"] = int(hc.job.num)
        task = f"{task}#{hc.job.num}"
    ident["name"] = " ".join([task, *shown])[:128]
    return ident


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # not installed here: nothing to record
            continue
    return out


def _manifest_of(spec: str) -> Path | None:
    """The ``manifest.json`` next to a shard spec (a directory, a glob or a brace pattern), if any."""
    if "://" in spec or spec.startswith("pipe:"):
        return None
    path = Path(spec)
    folder = path if path.is_dir() else path.parent
    while any(c in str(folder) for c in "*?[{"):
        folder = folder.parent
    return folder / "manifest.json" if (folder / "manifest.json").is_file() else None


def data_identity(cfg: DictConfig) -> dict[str, Any]:
    """{"train_shards": {spec, manifest, sha256 (first 16 hex digits), num_shards}, "val_shards": ...}."""
    out: dict[str, Any] = {}
    for key in ("train_shards", "val_shards"):
        spec = OmegaConf.select(cfg, f"data.{key}", default=None)
        if spec is None:
            continue
        specs = [str(s) for s in spec] if OmegaConf.is_list(spec) or isinstance(spec, list) else [str(spec)]
        entries = []
        for s in specs:
            manifest = _manifest_of(s)
            entry = {"spec": s, "num_files": len(glob.glob(s)) if any(c in s for c in "*?[") else None}
            if manifest is not None:
                entry.update(manifest=str(manifest), sha256=hashlib.sha256(manifest.read_bytes()).hexdigest()[:16])
            entries.append(entry)
        out[key] = entries[0] if len(entries) == 1 else entries
    return out


def provenance(cfg: DictConfig, identity: dict[str, Any]) -> dict[str, Any]:
    from ltx_train.modules.run_state import git_info  # the same commit/dirty the checkpoints record
    return {"git": git_info(), "overrides": identity["overrides"], "job_num": identity["job_num"],
            "sweep": identity["group"], "versions": package_versions(), "data": data_identity(cfg)}


def _is_wandb(node: Any) -> bool:
    return str(node.get("_target_", "")).endswith("WandbLogger")


def fill_wandb_identity(cfg: DictConfig, identity: dict[str, Any]) -> None:
    for key, node in (cfg.get("logger") or {}).items():
        if node is None or not _is_wandb(node):
            continue
        for field in ("name", "group", "job_type"):
            if OmegaConf.select(node, field, default=None) is None and identity[field] is not None:
                OmegaConf.update(cfg, f"logger.{key}.{field}", identity[field], force_add=True)


def finish_wandb(loggers: list, error: BaseException | None = None) -> None:
    """``wandb.finish`` for each WandbLogger that started a run; a failed job is finished with exit code 1
    and its error in the run's summary, so W&B shows it as failed."""
    from lightning.pytorch.loggers import WandbLogger
    for lg in loggers:
        if not isinstance(lg, WandbLogger) or lg._experiment is None:  # never started: nothing to end
            continue
        run = lg.experiment
        if error is not None:
            run.summary["error"] = f"{type(error).__name__}: {error}"[:1000]
        run.finish(exit_code=0 if error is None else 1)
        lg._experiment = None
