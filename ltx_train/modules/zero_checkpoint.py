"""A DeepSpeed ZeRO checkpoint (the directory ``trainer=deepspeed_*`` writes per checkpoint: one shard
file of weights and optimiser state per rank) -> one ordinary Lightning checkpoint file.

    python -m ltx_train.modules.convert_checkpoint <run>/checkpoints/last.ckpt <out>.ckpt

The file holds what a one-device run's checkpoint holds, so ``ltx-export`` reads it and a run resumes
from it under any strategy and on any number of devices (``ltx-train`` converts a ZeRO directory
given as ``ckpt_path`` itself when the run is not DeepSpeed):
- ``state_dict``: the float32 weights (DeepSpeed's master copy, merged over the ranks), the frozen
  parameters and the buffers (the EMA averages, the latent statistics);
- ``optimizer_states``: a ``torch.optim.AdamW`` state dict, per parameter ``exp_avg``, ``exp_avg_sq``
  and ``step`` merged over the ranks the same way, with DeepSpeed's param groups (lr, betas, decay);
- everything Lightning keeps beside them (step, loops, LR schedule, callbacks such as the data
  position and the non-finite counters, hyperparameters, ltx-train's records).

Restored exactly on resume: weights, EMA, Adam moments and step, LR schedule, data position. Not
restored: DeepSpeed's own counters (skipped steps, its samples count), which the new run restarts.

The layout of the shards is DeepSpeed's (``deepspeed.utils.zero_to_fp32``, whose merge functions are
used here for the moments as DeepSpeed uses them for the weights).
"""
from __future__ import annotations

from pathlib import Path

import torch

# what DeepSpeed adds to Lightning's client state in its model-states file (not Lightning's)
_DEEPSPEED_KEYS = {"module", "buffer_names", "optimizer", "param_shapes", "frozen_param_shapes", "shared_params",
                   "frozen_param_fragments", "lr_scheduler", "data_sampler", "random_ltd",
                   "sparse_tensor_module_names", "skipped_steps", "global_steps", "global_samples", "dp_world_size",
                   "mp_world_size", "ds_config", "ds_version"}
_PREFIX = "_forward_module."          # Lightning's wrapper of the LightningModule inside the engine


class ZeroCheckpointError(ValueError):
    """A directory that is not a readable ZeRO checkpoint (named in the message), or DeepSpeed missing."""


def is_zero_checkpoint(path: str | Path) -> bool:
    """A directory holding DeepSpeed's ``latest`` tag file (or a tag folder of shard files)."""
    p = Path(path)
    return p.is_dir() and ((p / "latest").is_file() or any(p.glob("*/*optim_states.pt")))


def _tag_dir(path: Path) -> Path:
    tag = (path / "latest").read_text().strip() if (path / "latest").is_file() else "checkpoint"
    d = path / tag
    if not d.is_dir():
        raise ZeroCheckpointError(f"{path}: no shard folder {tag!r} (named by {path / 'latest'})")
    return d


def client_state_file(path: str | Path) -> Path:
    """The rank-0 model-states file of a ZeRO checkpoint directory (Lightning's client state is in it)."""
    shards = _tag_dir(Path(path))
    files = sorted(shards.glob("*mp_rank_00_model_states.pt"))
    if not files:
        raise ZeroCheckpointError(f"{shards}: no model-states file")
    return next((f for f in files if f.name.startswith(("mp_rank", "zero_pp_rank_0_"))), files[0])


def _import_zero_to_fp32():
    """DeepSpeed's shard layout module; on a machine without CUDA its accelerator is named (DeepSpeed
    otherwise warns at import that it fell back to the CPU, which merging needs anyway)."""
    import os
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from deepspeed.utils import zero_to_fp32
    return zero_to_fp32


def _merged(flat_groups, states, zero_stage: int, world: int, paddings) -> dict[str, torch.Tensor]:
    """Per-parameter tensors from per-rank flat partitions laid out as DeepSpeed lays out its fp32 weights."""
    z = _import_zero_to_fp32()
    out: dict = {}
    if zero_stage <= 2:
        z._zero2_merge_trainable_params(out, world, flat_groups, states, paddings)
    else:
        z._zero3_merge_trainable_params(out, world, flat_groups, states)
        out = z.to_torch_tensor(out)
    return out


def convert_zero_checkpoint(path: str | Path) -> dict:
    """The Lightning checkpoint dict of a ZeRO checkpoint directory (see the module doc)."""
    try:
        z = _import_zero_to_fp32()
    except ImportError as e:
        raise ZeroCheckpointError(f"{path} is a DeepSpeed checkpoint: reading it needs DeepSpeed "
                                  "(pip install '.[distributed]')") from e
    path = Path(path).resolve()
    if not is_zero_checkpoint(path):
        raise ZeroCheckpointError(f"{path}: not a DeepSpeed ZeRO checkpoint directory (no 'latest' file)")
    shards = _tag_dir(path)
    # DeepSpeed's own files, written by this framework's runs: they hold DeepSpeed objects, so
    # weights_only=True cannot read them (the result below is plain and loads with weights_only=True)
    states = z.parse_model_states(z.get_model_state_files(str(shards)))
    optim = [torch.load(f, map_location="cpu", weights_only=False) for f in z.get_optim_files(str(shards))]
    osd = [o["optimizer_state_dict"] for o in optim]
    zero_stage, world = osd[0]["zero_stage"], osd[0]["partition_count"]
    world = max(world) if isinstance(world, list) else world
    if world != len(osd):
        raise ZeroCheckpointError(f"{shards}: {len(osd)} optimiser shard files for a world of {world} ranks")
    fp32_key = "single_partition_of_fp32_groups" if zero_stage <= 2 else "fp32_flat_groups"
    paddings = osd[0].get("param_alignment_paddings")

    weights = z._get_fp32_state_dict_from_zero_checkpoint(str(shards), exclude_frozen_parameters=False)
    weights = z.to_torch_tensor(weights) if zero_stage == 3 else dict(weights)

    # Adam's moments: the base optimiser's state per flat group, merged like the weights
    base = [o["base_optimizer_state"] if zero_stage <= 2 else o["optimizer_state_dict"] for o in osd]
    n_groups = len(osd[0][fp32_key])
    moments = {}
    for key in ("exp_avg", "exp_avg_sq"):
        if zero_stage <= 2:   # the weights are saved without the alignment padding at a group's end, the moments with it
            flats = [[b["state"][g][key][:b["state"][g][key].numel() - o["group_paddings"][g]] for g in range(n_groups)]
                     for b, o in zip(base, osd)]
        else:
            flats = [[b["state"][g][key] for g in range(n_groups)] for b in base]
        moments[key] = _merged(flats, states, zero_stage, world, paddings)
    step = base[0]["state"][0].get("step")

    # the torch AdamW state dict: parameters numbered group by group, in DeepSpeed's (= the client
    # optimiser's) order of param groups and parameters
    shapes = states[0].param_shapes
    names = [n for group in shapes for n in group]
    opt_state, groups, index = {}, [], 0
    for g, group in enumerate(shapes):
        ids = list(range(index, index + len(group)))
        index += len(group)
        hyper = {k: v for k, v in base[0]["param_groups"][min(g, len(base[0]["param_groups"]) - 1)].items()
                 if k != "params"}
        groups.append({**hyper, "params": ids})
        for i, n in zip(ids, group):
            opt_state[i] = {"step": torch.as_tensor(step, dtype=torch.float32).clone(),
                            "exp_avg": moments["exp_avg"][n].clone(), "exp_avg_sq": moments["exp_avg_sq"][n].clone()}

    client = torch.load(z.get_model_state_file(str(shards), zero_stage), map_location="cpu", weights_only=False)
    ckpt = {k: v for k, v in client.items() if k not in _DEEPSPEED_KEYS}
    ckpt["state_dict"] = {k[len(_PREFIX):] if k.startswith(_PREFIX) else k: v.contiguous()
                          for k, v in weights.items()}
    missing = [n for n in names if n not in weights]
    if missing:
        raise ZeroCheckpointError(f"{shards}: trained parameter {missing[0]!r} has no weights in the shards")
    ckpt["optimizer_states"] = [{"state": opt_state, "param_groups": groups}]
    ckpt["converted_from"] = {"deepspeed_checkpoint": str(path), "zero_stage": int(zero_stage), "world_size": int(world)}
    return ckpt


def save_converted(path: str | Path, out: str | Path) -> Path:
    """``convert_zero_checkpoint`` written atomically as plain types (loads with ``weights_only=True``)."""
    from ltx_train.modules.checkpointing import AtomicCheckpointIO
    AtomicCheckpointIO().save_checkpoint(convert_zero_checkpoint(path), out)
    return Path(out)
