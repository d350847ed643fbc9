"""ltx-train: pretrain and finetune an LTX-2.3-style joint audio-video diffusion model."""
__version__ = "0.1.0"
