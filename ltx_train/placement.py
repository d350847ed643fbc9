"""Where each part of `LTXVideoPipeline` runs: one device for all (``to``), a device per component
(``place``), or host memory with each component moved to the device only while it runs
(``enable_model_cpu_offload``). The pipeline's sampling code asks ``_running(name)`` for the device of
the part it is about to call and moves its tensors there."""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn


def _device_of(module: nn.Module) -> torch.device:
    t = next(iter(module.parameters()), None)
    if t is None:
        t = next(iter(module.buffers()), None)
    return t.device if t is not None else torch.device("cpu")


class ComponentPlacement:
    """Mixin: needs ``self.model``, ``self.mel`` and the components named in ``PARTS``."""
    offload_device: torch.device | None = None

    PARTS = ("text_encoder", "vae", "audio_vae", "model", "vocoder")

    @property
    def device(self) -> torch.device:
        """Where the DiT runs (the execution device under CPU offload)."""
        return self.offload_device if self.offload_device is not None else _device_of(self.model)

    def to(self, device: str | torch.device) -> ComponentPlacement:
        self.offload_device = None
        for part in (self.vae, self.audio_vae, self.model, self.vocoder, self.text_encoder, self.mel):
            if part is not None:
                part.to(device)
        return self

    def place(self, device_map: dict[str, str | torch.device]) -> ComponentPlacement:
        """Put each component on its own device, e.g. the DiT on one GPU and the text encoder, VAEs and
        vocoder on another: ``{"model": "cuda:0", "text_encoder": "cuda:1", "vae": "cuda:1",
        "audio_vae": "cuda:1", "vocoder": "cuda:1"}``. Components not named stay where they are; each
        step's tensors move to the device of the component that runs next."""
        unknown = sorted(set(device_map) - set(self.PARTS))
        if unknown:
            raise ValueError(f"device_map: unknown component {unknown[0]!r} (components: {', '.join(self.PARTS)})")
        self.offload_device = None
        for name, dev in device_map.items():
            part = getattr(self, name)
            if part is not None:
                part.to(torch.device(dev))
        self.mel.to(self._device("vocoder" if self.vocoder is not None else "audio_vae"))
        return self

    def enable_model_cpu_offload(self, device: str | torch.device = "cuda") -> ComponentPlacement:
        """Keep every component in host memory and move each to ``device`` only while it runs (the text
        encoder, then the VAE for an image, the DiT for sampling, the VAEs and vocoder for decoding), so
        the device holds one component's weights at a time plus the activations."""
        self.to("cpu")
        self.offload_device = torch.device(device)
        return self

    def _device(self, name: str) -> torch.device:
        if self.offload_device is not None:
            return self.offload_device
        return _device_of(getattr(self, name))

    @contextmanager
    def _running(self, name: str):
        """The device component ``name`` runs on; under CPU offload it is moved there for the block."""
        part = getattr(self, name)
        if self.offload_device is None or part is None:
            yield self._device(name) if part is not None else self.device
            return
        part.to(self.offload_device)
        try:
            yield self.offload_device
        finally:
            part.to("cpu")
