"""``LoraLoaderMixin``: the diffusers-style LoRA methods of ``LTXVideoPipeline``, on ``self.model``."""
from __future__ import annotations

from pathlib import Path

from ltx_train.lora import adapters as A
from ltx_train.lora.files import load_lora
from ltx_train.lora.spec import adapter_name_for


class LoraLoaderMixin:
    """Needs ``self.model`` (an LTXModel). Up to three adapters active at once; see ``ltx_train.lora``."""

    def load_lora_weights(self, path: str | Path, adapter_name: str | None = None, weight: float = 1.0,
                          activate: bool = True) -> str:
        """A folder with adapter_model.safetensors + adapter_config.json, or the .safetensors file with
        its config beside it. ``adapter_name`` defaults to the folder's name. Returns the name."""
        if getattr(self.model, "ltx_quantized", None):
            raise A.LoraError(f"load_lora_weights: the model is quantized ({self.model.ltx_quantized}); load and fuse "
                              f"adapters on the float model, then quantize (from_pretrained without quantize=, "
                              f"load_lora_weights, fuse_lora, unload_lora_weights(keep_fused=True), pipe.quantize())")
        name = adapter_name if adapter_name is not None else adapter_name_for(path, A.list_adapters(self.model))
        return load_lora(self.model, path, name, weight=weight, activate=activate)

    def set_adapters(self, adapter_names: str | list[str], weights: float | list[float] | None = None, *,
                     adapter_weights: float | list[float] | None = None) -> None:
        """``adapter_weights`` is diffusers' name for ``weights``."""
        if weights is not None and adapter_weights is not None:
            raise A.LoraError("set_adapters: give weights or adapter_weights, not both")
        A.set_adapters(self.model, adapter_names, weights if weights is not None else adapter_weights)

    def get_active_adapters(self) -> list[str]:
        return A.get_active_adapters(self.model)

    def get_adapter_weights(self) -> dict[str, float]:
        return A.adapter_weights(self.model)

    def list_adapters(self) -> list[str]:
        return A.list_adapters(self.model)

    def disable_lora(self) -> None:
        A.disable_lora(self.model)

    def enable_lora(self) -> None:
        A.enable_lora(self.model)

    def delete_adapters(self, adapter_names: str | list[str]) -> None:
        A.delete_adapters(self.model, adapter_names)

    def unload_lora_weights(self, keep_fused: bool = False) -> None:
        A.unload_lora(self.model, keep_fused=keep_fused)

    def fuse_lora(self, lora_scale: float = 1.0, adapter_names: list[str] | None = None) -> None:
        A.fuse_lora(self.model, lora_scale, adapter_names)

    def unfuse_lora(self) -> None:
        A.unfuse_lora(self.model)
