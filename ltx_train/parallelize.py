"""What is applied to the plain models from outside, in the LightningModule's ``configure_model``, once
the strategy has set up the processes, in this order: activation checkpointing per DiT block,
torch.compile (regional: per block, in place, so state-dict keys and checkpoints do not change) and FSDP2
sharding (``torch.distributed.fsdp.fully_shard``: ``shard_model`` for the DiT stage and LoRA, ``shard_stage``
for the VAE, audio-VAE and vocoder stages); and the DeepSpeed strategy (``trainer=deepspeed_*``).
The model files know nothing of any of them.

    from ltx_train.parallelize import checkpoint_blocks, compile_model, shard_model
    checkpoint_blocks(ltx_model.dit)             # what ``model.activation_checkpointing=true`` does
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

import torch
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


def checkpoint_blocks(dit: nn.Module) -> None:
    """Activation checkpointing per DiT block (``model.activation_checkpointing=true``): in training, a
    block keeps only its inputs for the backward pass and recomputes its activations there (about one
    more forward of the trunk, for a fraction of the activation memory). The block's ``forward`` is
    wrapped in place, so parameter names, state-dict keys and checkpoints do not change; apply it before
    ``compile_blocks`` (the compiled call then traces the checkpointed forward)."""
    from torch.utils.checkpoint import checkpoint

    for block in dit.blocks:
        if getattr(block, "_ltx_checkpointed", False):
            continue
        inner = block.forward

        def forward(*args, _inner=inner, _block=block, **kwargs):
            if _block.training and torch.is_grad_enabled():
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)
            return _inner(*args, **kwargs)
        block.forward = forward
        block._ltx_checkpointed = True


def compile_blocks(dit: nn.Module, **kwargs) -> None:
    """``torch.compile`` each block of a ``JointDiT`` (or anything with ``.blocks``) in place."""
    for block in dit.blocks:
        block.compile(**kwargs)


def compile_vae(vae: nn.Module, **kwargs) -> None:
    """``torch.compile`` a ``VideoVAE``'s encoder and decoder in place (``model.compile=true`` of the VAE
    stage): their convolutions run as cuDNN kernels either way; compiling fuses the norms, activations,
    residual adds and the timestep modulation between them. State-dict keys do not change."""
    vae.encoder.compile(**kwargs)
    vae.decoder.compile(**kwargs)


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


def shard_network(net: nn.Module, mesh, methods: tuple[str, ...] = ("encode", "decode", "encode_params")) -> None:
    """FSDP2 for a convolutional network of the pixel stages (video VAE, audio VAE, vocoder, their
    discriminators): every block held in a ``ModuleList`` is its own group (one all-gather each, innermost
    first), and so is each direct child (an encoder, a decoder): their outputs are tensors, on which FSDP
    hooks the backward (the VAEs' own outputs include a posterior object, which it cannot). The network
    holds what is left. Containers are never groups, since their ``forward`` is never called; modules
    with no parameters of their own are skipped (weight norm's parametrisations go with their conv). The network's ``encode`` / ``decode`` entry points
    gather its own parameters as ``forward`` does (``register_fsdp_forward_method``)."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    def called(m: nn.Module) -> bool:   # a module whose forward runs and that holds parameters
        return not isinstance(m, (nn.ModuleList, nn.ModuleDict)) and any(True for _ in m.parameters())

    blocks = [b for lst in net.modules() if isinstance(lst, nn.ModuleList) for b in lst if called(b)]
    owners = {id(b) for b in blocks} | {id(c) for c in net.children() if called(c)}
    for m in reversed(list(net.modules())):            # innermost first: a group nests inside its parent's
        if id(m) in owners:
            fully_shard(m, mesh=mesh)
    fully_shard(net, mesh=mesh)
    for name in methods:
        if callable(getattr(type(net), name, None)):
            register_fsdp_forward_method(net, name)


def shard_stage(module, networks) -> None:
    """``trainer=fsdp`` for a pixel stage (``VAEModule``, ``AudioVAEModule``, ``VocoderModule``), from its
    ``configure_model``: each trainable network (``None`` skipped) sharded by ``shard_network``, the rest
    (mel filters, metrics) moved to the device. A no-op under other strategies, and on a second call."""
    if not is_fsdp(module._trainer) or getattr(module, "_parallelized", False):
        return
    module._parallelized = True
    mesh = module.device_mesh["data_parallel"]
    for net in networks:
        if net is not None:
            shard_network(net, mesh)
    move_unsharded(module, module._trainer.strategy.root_device)


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


# ------------------------------------------------------------------------------------------ DeepSpeed
def _lightning_deepspeed():
    from lightning.pytorch.strategies import DeepSpeedStrategy as LightningDeepSpeed
    return LightningDeepSpeed


class DeepSpeedStrategy(_lightning_deepspeed()):
    """Lightning's ``DeepSpeedStrategy`` (ZeRO stage 1-3, optimiser / parameter offload to the CPU) with
    what ltx-train needs of it (``trainer=deepspeed_zero2`` / ``deepspeed_zero3`` / ``*_offload``):

    - **Mixed precision as the other strategies train**: ``autocast="bf16"`` (default) is DeepSpeed's
      ``torch_autocast``: the weights, the gradients' accumulation and the optimiser stay float32 and the
      matmuls run under bf16 autocast, as ``trainer=gpu``'s ``bf16-mixed`` does (DeepSpeed's own ``bf16``
      mode casts the weights to bf16, so the EMA and the latent statistics would average bf16 values).
      The trainer's ``precision`` must then be ``32-true``; anything else is refused by name.
    - **Atomic checkpoints**: DeepSpeed writes a directory (one shard file per rank); it is written
      under a temporary name and renamed into place once every rank has written, so a kill leaves the
      old checkpoint or the new one, never half of one.
    - **An optimiser of ours offloaded**: with ``offload_optimizer`` DeepSpeed would insist on its own
      compiled CPU Adam (``zero_force_ds_cpu_optimizer``); ltx-train's torch AdamW (fused, on the CPU)
      runs instead, so no CUDA/C++ build is needed.
    - Lightning's warning that ``configure_gradient_clipping`` is not used is silenced: DeepSpeed clips
      by ``trainer.gradient_clip_val`` itself (and the modules' own clipping steps aside under it).
    """

    def __init__(self, *args, autocast: str | None = "bf16", **kwargs):
        if autocast not in (None, "bf16", "fp16"):
            from ltx_train.config import ConfigError
            raise ConfigError(f"trainer.strategy.autocast must be bf16, fp16 or null, got {autocast!r}")
        super().__init__(*args, **kwargs)
        self.autocast = autocast
        import logging
        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)   # its config dump and per-step INFO lines

    def _format_config(self) -> None:
        precision = self.precision_plugin.precision
        if self.autocast is not None and precision != "32-true":
            from ltx_train.config import ConfigError
            raise ConfigError(f"trainer=deepspeed_*: trainer.precision={precision} with trainer.strategy.autocast="
                              f"{self.autocast}; the weights stay float32 under DeepSpeed's torch_autocast, so set "
                              "trainer.precision=32-true (or trainer.strategy.autocast=null for DeepSpeed's own "
                              "half-precision weights)")
        # Lightning reads the batch size off the DataLoader's batch sampler, which an iterable dataset
        # has not; DeepSpeed only logs throughput with it
        dm = getattr(getattr(self.lightning_module, "trainer", None), "datamodule", None)
        self.config.setdefault("train_micro_batch_size_per_gpu", int(getattr(dm, "batch_size", None) or 1))
        super()._format_config()
        if self.autocast is not None:
            dtype = {"bf16": "bfloat16", "fp16": "float16"}[self.autocast]
            self.config.setdefault("torch_autocast", {"enabled": True, "dtype": dtype})
        zero = self.config.get("zero_optimization") or {}
        if zero.get("offload_optimizer"):
            self.config.setdefault("zero_force_ds_cpu_optimizer", False)

    def init_deepspeed(self) -> None:
        import warnings
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*DeepSpeed handles gradient clipping internally.*")
            super().init_deepspeed()

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options=None) -> None:
        import os
        import shutil
        from pathlib import Path

        from ltx_train.modules.checkpointing import TMP_TAG, _fsync_dir
        final = Path(self.broadcast(str(filepath)))
        tmp = final.with_name(f".{final.name}{TMP_TAG}{self.broadcast(os.getpid())}")
        if self.is_global_zero and tmp.exists():
            shutil.rmtree(tmp)
        self.barrier()
        super().save_checkpoint(checkpoint, tmp, storage_options)
        self.barrier()                      # every rank's shard is on disk
        if self.is_global_zero:
            old = final.with_name(f".{final.name}.old{TMP_TAG}{os.getpid()}")
            if final.is_symlink() or final.is_file():
                final.unlink()
            elif final.exists():            # the same step saved again: the old one is set aside first
                os.replace(final, old)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            shutil.rmtree(old, ignore_errors=True)
        self.barrier()


def is_deepspeed(trainer) -> bool:
    from lightning.pytorch.strategies import DeepSpeedStrategy as LightningDeepSpeed
    return trainer is not None and isinstance(trainer.strategy, LightningDeepSpeed)
