"""ltx-train: pretrain and finetune an LTX-2.3-style joint audio-video diffusion model."""
import logging as _logging

__version__ = "0.1.0"

# Import-time noise of torchao (INT8 inference, ltx_train/quantize.py), which peft imports whenever it is
# installed: a warning per CUDA kernel library it cannot load on this machine (the int8 weight-only path
# needs none of them), and torch's note on torchao registering an Enum with pytree. Set before anything
# imports peft; see also ltx_train/quiet.py.
_logging.getLogger("torchao").setLevel(_logging.ERROR)
_logging.getLogger("torch.utils._pytree").setLevel(_logging.ERROR)
