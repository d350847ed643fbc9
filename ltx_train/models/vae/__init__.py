"""Causal temporal video VAE (see video_vae.py), its presets and tiled encode/decode."""
from .presets import PRESETS, preset
from .tiling import TileConfig, tiled_decode, tiled_encode
from .video_vae import VideoVAE, VideoVAEConfig, crop_to_valid, valid_num_frames

__all__ = ["PRESETS", "TileConfig", "VideoVAE", "VideoVAEConfig", "crop_to_valid", "preset",
           "tiled_decode", "tiled_encode", "valid_num_frames"]
