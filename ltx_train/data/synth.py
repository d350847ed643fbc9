"""Synthetic physics world: ``render_clip(seed, cfg)`` -> frames, audio, annotations and caption.

The pieces: ``synth_world`` samples the scene and integrates the exact kinematics, ``synth_render``
draws frames, ``synth_audio`` synthesises impact sounds at the contact instants and ``captions``
describes the clip. Every random choice derives from the seed, so a clip is a pure function of
(seed, cfg). Annotation format: data/README.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltx_train.data.captions import CAPTION_LAYERS, caption
from ltx_train.data.synth_audio import render_audio
from ltx_train.data.synth_render import render_frames
from ltx_train.data.synth_palette import PALETTES
from ltx_train.data.synth_world import (CAMERA_MOTIONS, GRAVITY_NAMES, PALETTE, Scene, evaluate, sample_scene,
                                        to_screen)
from ltx_train.timing import clip_num_samples

VAL_SEED_OFFSET = 1_000_000_000  # val seeds live far from train seeds, so the splits never overlap


def split_seeds(seed: int, n_train: int, n_val: int) -> dict[str, list[int]]:
    """Clip seeds per split: train = seed + i, val = seed + VAL_SEED_OFFSET + i (disjoint for n < 1e9).

    Shared by the shard writer and the live DataModule, so both make the same clips of a seed.
    """
    return {"train": [seed + i for i in range(n_train)],
            "val": [seed + VAL_SEED_OFFSET + i for i in range(n_val)]}


@dataclass
class SynthConfig:
    width: int = 64
    height: int = 64
    num_frames: int = 25
    fps: float = 24.0
    sample_rate: int = 24000
    min_objects: int = 1
    max_objects: int = 3
    ambience_db: float = -45.0  # RMS of the room noise under the impacts, dBFS
    crf: int = 18               # H.264 quality when the clip is encoded
    palette: str = "default"    # look of the world (synth_palette.PALETTES); never changes the motion
    camera: str | None = None   # force one camera motion (CAMERA_MOTIONS) for every clip; None = sampled
    gravity: str | None = None  # force one gravity direction (GRAVITY_NAMES); None = sampled
    drop_caption: tuple[str, ...] = ()  # caption layers left out (CAPTION_LAYERS), e.g. ("camera",) for a
                                        # motion LoRA whose adapter, not the text, is to carry the motion

    def __post_init__(self):
        for key, value, allowed in (("palette", self.palette, tuple(PALETTES)),
                                    ("camera", self.camera, (None, *CAMERA_MOTIONS)),
                                    ("gravity", self.gravity, (None, *GRAVITY_NAMES))):
            if value not in allowed:
                raise ValueError(f"SynthConfig.{key}={value!r}: expected one of {allowed}")
        self.drop_caption = tuple(self.drop_caption)
        unknown = [k for k in self.drop_caption if k not in CAPTION_LAYERS]
        if unknown:
            raise ValueError(f"SynthConfig.drop_caption={list(self.drop_caption)!r}: unknown layer {unknown[0]!r}, "
                             f"expected some of {CAPTION_LAYERS}")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even for yuv420p H.264, got {self.width}x{self.height}")
        if not 1 <= self.min_objects <= self.max_objects <= len(PALETTE):
            raise ValueError(f"need 1 <= min_objects <= max_objects <= {len(PALETTE)}")
        if self.num_frames < 1 or self.fps <= 0:
            raise ValueError("num_frames must be >= 1 and fps > 0")

    @property
    def num_samples(self) -> int:
        """Audio length: exactly num_frames / fps seconds."""
        return clip_num_samples(self.num_frames, self.fps, self.sample_rate)


@dataclass
class Clip:
    seed: int
    frames: np.ndarray     # (T, H, W, 3) uint8
    audio: np.ndarray      # (S,) float32 mono, S = T * sample_rate / fps
    annotations: dict      # JSON-ready, schema in data/README.md
    caption: str

    @property
    def key(self) -> str:
        return f"synth-{self.seed}"


def _r(x, nd: int = 6):
    return np.round(np.asarray(x, np.float64), nd).tolist()


def annotate(scene: Scene, cfg: SynthConfig, times: np.ndarray, pos: np.ndarray, vel: np.ndarray,
             contacts: list[dict]) -> dict:
    """World-space simulation -> the JSON annotations, positions in normalised screen coordinates."""
    centers, velocities = to_screen(scene, times, pos, vel)
    g = scene.gravity / np.linalg.norm(scene.gravity)
    return {
        "seed": int(scene.seed), "fps": float(cfg.fps), "num_frames": cfg.num_frames,
        "width": cfg.width, "height": cfg.height, "sample_rate": cfg.sample_rate,
        "gravity": _r(g), "gravity_name": scene.gravity_name,
        "gravity_accel": round(float(np.linalg.norm(scene.gravity)), 6),
        "light": _r([scene.light[0] / scene.aspect, scene.light[1], scene.light[2]]),
        "camera": {"motion": scene.camera, "pan_speed": round(scene.pan_speed, 6),
                   "zoom_rate": round(scene.zoom_rate, 6)},
        "background": f"{scene.wall_tone} {scene.background}", "palette": scene.palette,
        "objects": [{"shape": o.shape, "material": o.material, "color": list(o.color), "color_name": o.color_name,
                     "radius": round(o.size, 6), "restitution": round(o.restitution, 6),
                     "depth": round(o.depth, 6)} for o in scene.objects],
        "centers": _r(centers), "velocities": _r(velocities),
        "contacts": [{"frame": min(int(round(c["time"] * cfg.fps)), cfg.num_frames - 1), "time": float(c["time"]),
                      "object": c["object"], "material": scene.objects[c["object"]].material,
                      "surface": c["surface"], "speed": round(float(c["speed"]), 6)} for c in contacts],
    }


def render_clip(seed: int, cfg: SynthConfig | None = None, noise_seed: int | None = None) -> Clip:
    """Render one clip; the same (seed, cfg) always gives identical frames, audio and annotations.
    ``noise_seed``: the same clip over another realisation of its room noise (``render_audio``)."""
    cfg = cfg or SynthConfig()
    scene = sample_scene(seed, cfg)
    times = np.arange(cfg.num_frames) / cfg.fps
    states = [evaluate(tr, scene.gravity, times) for tr in scene.trajectories]
    pos = np.stack([p for p, _ in states], 1)   # (T, N, 2) world
    vel = np.stack([v for _, v in states], 1)
    contacts = sorted(({**c, "object": i} for i, tr in enumerate(scene.trajectories) for c in tr.contacts),
                      key=lambda c: (c["time"], c["object"]))
    frames = render_frames(scene, times, pos, cfg.width, cfg.height)
    audio = render_audio(contacts, scene.objects, cfg.num_samples, cfg.sample_rate, seed, cfg.ambience_db, noise_seed)
    return Clip(seed, frames, audio, annotate(scene, cfg, times, pos, vel, contacts),
                caption(scene, contacts, drop=cfg.drop_caption))
