"""peft LoRA adapters on LTXModel (being written)."""


class LoraLoaderMixin:
    pass
