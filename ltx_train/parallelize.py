"""What is applied to the plain models from outside, in the LightningModule's ``configure_model``, once
the strategy has set up the processes: torch.compile (regional: per block, in place, so state-dict keys
and checkpoints do not change) and FSDP2 sharding (``torch.distributed.fsdp.fully_shard``). The model
files know nothing of either.

    from ltx_train.parallelize import compile_model, shard_model
    compile_model(ltx_model, scope="blocks")     # what ``model.compile=true`` does
    shard_model(ltx_model, mesh)                 # what ``trainer=fsdp`` does (FSDPStrategy below)

Scopes:
- ``"blocks"``: each DiT block (the trunk: attention, MLP, modulation; about all of the FLOPs).
- ``"all"``: also the text connector's blocks, the timestep embedder, the output heads and the physics
  heads, which otherwise run as many small eager kernels (kernel launches the CPU must issue).

On an H100 compiling the blocks halved the small preset's DiT step (experiments/gpu_dit_throughput.md);
``experiments/gpu_speed.md`` measures the rest.
"""
from __future__ import annotations

import torch.nn as nn
from lightning.pytorch.strategies import ModelParallelStrategy

SCOPES = ("blocks", "all")


def compile_scope(value: bool | str | None) -> str | None:
    """``model.compile`` -> a scope: false/None -> None, true -> "blocks", or a scope by name."""
    if value is None or value is False or value == "false":
        return None
    if value is True or value == "true":
        return "blocks"
    if value not in SCOPES:
        raise ValueError(f"model.compile must be true, false or one of {SCOPES}, got {value!r}")
    return value


def compile_blocks(dit: nn.Module, **kwargs) -> None:
    """``torch.compile`` each block of a ``JointDiT`` (or anything with ``.blocks``) in place."""
    for block in dit.blocks:
        block.compile(**kwargs)


def compile_model(model: nn.Module, scope: str = "blocks", **kwargs) -> None:
    """Compile an ``LTXModel``'s parts in place for ``scope`` (see the module doc)."""
    scope = compile_scope(scope)
    if scope is None:
        return
    compile_blocks(model.dit, **kwargs)
    if scope == "all":
        dit = model.dit
        parts = [*model.connector.blocks, dit.t_embedder, dit.video_out, dit.audio_out]
        if getattr(model, "physics", None) is not None:
            parts.append(model.physics)
        for part in parts:
            part.compile(**kwargs)


# ---------------------------------------------------------------------------------------------- FSDP2
def shard_model(model: nn.Module, mesh) -> None:
    """``fully_shard`` each DiT block and each connector block (one all-gather per block in forward and
    backward, resharded after use), then the connector, the DiT and the physics heads as groups of their
    remaining parameters. Parameters become DTensors sharded on dim 0 over ``mesh``; names and state-dict
    keys do not change. Buffers (the latent statistics) stay whole on every rank.

    The ``LTXModel`` itself is not a group: ``encode_text`` calls the connector outside the model's
    ``forward``, and FSDP gathers a group's parameters only when that group's own forward runs."""
    from torch.distributed.fsdp import fully_shard

    for block in model.dit.blocks:
        fully_shard(block, mesh=mesh)
    for block in model.connector.blocks:
        fully_shard(block, mesh=mesh)
    for part in (model.connector, model.dit, getattr(model, "physics", None)):
        if part is not None:
            fully_shard(part, mesh=mesh)


def shard_ema(ema: nn.Module, model: nn.Module) -> None:
    """Give each EMA average the placement of its (now sharded) parameter: every rank keeps the average
    of its own shard only. Called right after ``shard_model``, when averages equal the weights (a
    checkpoint is restored into the sharded averages afterwards)."""
    from torch.distributed.tensor import DTensor

    from ltx_train.modules.ema import _key
    params = dict(model.named_parameters())
    for name in ema.names:
        p = params[name]
        if isinstance(p, DTensor):
            ema._buffers[_key(name)] = p.detach().clone()


def move_unsharded(module: nn.Module, device) -> None:
    """Move what ``fully_shard`` did not place (frozen encoders, EMA counters, module buffers) to
    ``device``; DTensors are left where FSDP put them."""
    from torch.distributed.tensor import DTensor

    for m in module.modules():
        for k, b in m._buffers.items():
            if b is not None and not isinstance(b, DTensor) and b.device != device:
                m._buffers[k] = b.to(device)
        for p in m._parameters.values():
            if p is not None and not isinstance(p, DTensor) and p.device != device:
                p.data = p.data.to(device)


class FSDPStrategy(ModelParallelStrategy):
    """Lightning's ``ModelParallelStrategy`` as plain FSDP2 data parallelism (``trainer=fsdp``): every
    process is one data-parallel rank (no tensor parallelism), and the module's ``configure_model``
    shards it with ``shard_model``. By default the checkpoint is one full file written on rank 0
    (``save_distributed_checkpoint=False``): ``ltx-export`` reads it, and a run resumes from it on any
    number of processes, under FSDP, DDP or one device."""

    def __init__(self, save_distributed_checkpoint: bool = False, process_group_backend: str | None = None, **kwargs):
        if save_distributed_checkpoint:
            # a folder of shards per checkpoint: SafeModelCheckpoint's last.ckpt link, pruning and
            # non-finite check, ltx-export and resuming on another world size all read one file
            from ltx_train.config import ConfigError
            raise ConfigError("trainer.strategy.save_distributed_checkpoint=true is not supported: ltx-train "
                              "checkpoints are one full file (rank 0 gathers the shards); set it to false")
        super().__init__(save_distributed_checkpoint=save_distributed_checkpoint,
                         process_group_backend=process_group_backend, **kwargs)

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()


def is_fsdp(trainer) -> bool:
    return trainer is not None and isinstance(trainer.strategy, ModelParallelStrategy)
