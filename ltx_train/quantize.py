"""Weight-only INT8 for inference, through torchao: the linear layers of the DiT's and the text
connector's transformer blocks keep int8 weights with one scale per output channel; activations and
everything else (patch in/out projections, timestep and output heads, VAEs, vocoder) stay in the
compute dtype. The trunk holds nearly all the weights, so their memory drops to about a quarter of
fp32 (half of bf16).

    pipe = LTXVideoPipeline.from_pretrained(dir, quantize="int8")     # or ltx-generate quantize=int8
    report = quantize_model(pipe.model)                                # on a loaded LTXModel

Inference only: the quantized weights do not train, and LoRA adapters must be loaded and fused before
quantizing (``pipe.load_lora_weights`` refuses a quantized model).
"""
from __future__ import annotations

import logging

import torch
import torch.nn as nn

MODES = ("int8",)


class QuantizeError(ValueError):
    """An unknown quantization mode, or an operation a quantized model cannot do."""


def _torchao():
    # torchao logs a warning for each of its CUDA kernel libraries it cannot load on this machine, at
    # import; the int8 weight-only path does not use them
    logging.getLogger("torchao").setLevel(logging.ERROR)
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError as e:
        raise QuantizeError(f"quantize=int8 needs torchao, which cannot be imported here ({e}): "
                            "pip install torchao") from e
    return Int8WeightOnlyConfig, quantize_


def weight_bytes(module: nn.Module) -> int:
    """Bytes of the module's parameters and buffers as stored (int8 data and scales for quantized ones)."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        inner = [getattr(t, name) for name in getattr(t, "__tensor_flatten__", lambda: ([], None))()[0]]
        total += sum(x.numel() * x.element_size() for x in inner) if inner else t.numel() * t.element_size()
    return total


def trunk_linears(model: nn.Module) -> list[str]:
    """Names of the linear layers that ``quantize_model`` converts: those inside the DiT's and the
    connector's blocks."""
    names = []
    for prefix, blocks in (("dit.blocks", model.dit.blocks), ("connector.blocks", model.connector.blocks)):
        for i, block in enumerate(blocks):
            names += [f"{prefix}.{i}.{n}" for n, m in block.named_modules() if isinstance(m, nn.Linear)]
    return names


def quantize_model(model: nn.Module, mode: str = "int8") -> dict:
    """Quantize an ``LTXModel`` in place for inference; returns what changed: the layers converted and
    the model's weight bytes before and after."""
    if mode not in MODES:
        raise QuantizeError(f"quantize: unknown mode {mode!r}; choose from {MODES}")
    if getattr(model, "peft_config", None):
        raise QuantizeError("quantize: LoRA adapters are loaded; fuse them first (pipe.fuse_lora(), then "
                            "pipe.unload_lora_weights(keep_fused=True)) and quantize the merged model")
    config_cls, quantize_ = _torchao()
    chosen = set(trunk_linears(model))
    before = weight_bytes(model)
    model.eval().requires_grad_(False)
    with torch.no_grad():
        quantize_(model, config_cls(), filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and fqn in chosen)
    model.ltx_quantized = mode
    return {"mode": mode, "layers": len(chosen), "bytes_before": before, "bytes_after": weight_bytes(model)}
