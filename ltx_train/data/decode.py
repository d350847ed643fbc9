"""Decode one WebDataset sample (``mp4`` + ``txt`` + optional ``json``) into a training clip.

Time axis of a clip (the contract of ``data/README.md``):
- the clip starts at source frame ``s0``, i.e. ``t0 = s0 / src_fps`` seconds, and clip frame ``i`` shows
  the source frame nearest to ``t0 + i / fps``; a source at twice the clip fps gives every other frame;
- the audio is cut to exactly ``[t0, t0 + num_frames / fps)`` at the target sample rate, so a sound
  at source time ``t`` lands at clip sample ``round((t - t0) * sample_rate)``;
- annotations are read at the very source frames that are shown, and a contact at time ``t`` is
  marked at clip frame ``round((t - t0) * fps)`` (the README's ``frame = round(time * fps)``).

Anything that makes a sample unusable (missing mp4 or caption, undecodable video, bad JSON, a clip
shorter than ``num_frames / fps``) raises ``SampleError`` or one of ``DECODE_ERRORS``; the stream skips
and counts such samples. Frames and audio are read by ``ltx_train.media`` (decord for video, straight
from the bytes; PyAV for audio). A file without audio, with an empty audio track or with a track of
digital zeros gives ``audio_mask`` False.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from ltx_train.audio.mel import LogMel
from ltx_train.data.transforms import CropGeometry, frames_to_clip, plan_resize_crop
from ltx_train.media import MediaError, read_audio, read_clip
from ltx_train.timing import clip_num_samples


class SampleError(ValueError):
    """A sample that cannot become a clip (missing part, malformed annotation, too short)."""


# What a broken sample can raise while decoding; anything else is a bug and propagates.
DECODE_ERRORS = (SampleError, MediaError, json.JSONDecodeError,
                 UnicodeDecodeError, RuntimeError, ValueError, KeyError, TypeError, IndexError)


@dataclass(frozen=True)
class ClipConfig:
    num_frames: int = 25
    fps: float = 24.0
    height: int = 64
    width: int = 64
    sample_rate: int = 24000
    max_objects: int = 3
    decode_threads: int = 1  # decord threads per reader (0 = decord's choice); workers already parallelise

    @property
    def num_samples(self) -> int:
        """Audio samples per clip, S = T * sample_rate / fps (rounded when not an integer)."""
        return clip_num_samples(self.num_frames, self.fps, self.sample_rate)


def clip_offsets(num_frames: int, fps: float, src_fps: float) -> np.ndarray:
    """(T,) source-frame offsets from the clip start: nearest source frame to each clip frame time."""
    # floor(x + 0.5), not np.round: half-to-even would make the pattern depend on parity
    return np.floor(np.arange(num_frames) * (src_fps / fps) + 0.5 + 1e-9).astype(np.int64)


def choose_start(num_src: int, offsets: np.ndarray, rng: np.random.Generator | None) -> int:
    """First source frame of the clip: random for training, centred when ``rng`` is None."""
    max_start = num_src - 1 - int(offsets[-1])
    if max_start < 0:
        raise SampleError(f"video has {num_src} frames but the clip needs {int(offsets[-1]) + 1}")
    return max_start // 2 if rng is None else int(rng.integers(0, max_start + 1))


def decode_video(data: bytes, cfg: ClipConfig, rng: np.random.Generator | None
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """mp4 bytes -> (frames (T, h, w, 3) uint8, source frame indices (T,), source fps)."""
    def pick(num_src: int, src_fps: float) -> np.ndarray:
        offsets = clip_offsets(cfg.num_frames, cfg.fps, src_fps)
        return choose_start(num_src, offsets, rng) + offsets
    return read_clip(data, pick, num_threads=cfg.decode_threads)


def empty_annotations(cfg: ClipConfig) -> dict[str, torch.Tensor]:
    T, K = cfg.num_frames, cfg.max_objects
    return {"ann_mask": torch.tensor(False), "gravity": torch.zeros(2), "light": torch.zeros(3),
            "centers": torch.zeros(T, K, 2), "velocities": torch.zeros(T, K, 2),
            "obj_mask": torch.zeros(K, dtype=torch.bool), "contacts": torch.zeros(T)}


def _per_frame(ann: dict, name: str, num_objects: int) -> np.ndarray:
    a = np.asarray(ann[name], dtype=np.float32)
    if a.ndim != 3 or a.shape[1:] != (num_objects, 2) or a.shape[0] == 0:
        raise SampleError(f"annotation {name!r} has shape {a.shape}, expected (frames, {num_objects}, 2)")
    return a


def resample_annotations(ann: dict, src_idx: np.ndarray, src_fps: float, geom: CropGeometry,
                         cfg: ClipConfig) -> dict[str, torch.Tensor]:
    """Annotation JSON -> per-clip-frame labels in the output crop's screen coordinates.

    src_idx: (T,) source video frames shown by the clip. Annotation frames are indexed at the
    annotation's own fps (normally the video's), so labels follow the frames actually shown.
    """
    if not isinstance(ann, dict):
        raise SampleError(f"annotation JSON is a {type(ann).__name__}, expected an object")
    T, K = cfg.num_frames, cfg.max_objects
    out = empty_annotations(cfg)
    ann_fps = float(ann.get("fps", src_fps))
    n_obj = len(ann.get("objects", []))
    if n_obj:
        centers, velocities = _per_frame(ann, "centers", n_obj), _per_frame(ann, "velocities", n_obj)
        a_idx = np.floor(src_idx / src_fps * ann_fps + 0.5 + 1e-9).astype(np.int64)
        if a_idx[-1] >= min(len(centers), len(velocities)):  # never pad labels: they would silently lie
            raise SampleError(f"annotations cover {min(len(centers), len(velocities))} frames, "
                              f"the clip needs frame {a_idx[-1]}")
        n = min(n_obj, K)  # objects beyond max_objects slots are dropped
        out["centers"][:, :n] = torch.from_numpy(geom.points(centers[a_idx, :n]))
        out["velocities"][:, :n] = torch.from_numpy(geom.vectors(velocities[a_idx, :n]))
        out["obj_mask"][:n] = True
    gravity = np.asarray(ann["gravity"], dtype=np.float32)
    light = np.asarray(ann["light"], dtype=np.float32)
    if gravity.shape != (2,) or light.shape != (3,):
        raise SampleError(f"gravity {gravity.shape} / light {light.shape}, expected (2,) / (3,)")
    out["gravity"] = torch.from_numpy(geom.direction(gravity))
    out["light"] = torch.from_numpy(np.concatenate([geom.points(light[:2]), light[2:]]).astype(np.float32))
    t0 = src_idx[0] / src_fps
    for c in ann.get("contacts", []):
        t = float(c["time"]) if "time" in c else float(c["frame"]) / ann_fps
        j = int(np.floor((t - t0) * cfg.fps + 0.5 + 1e-9))
        if 0 <= j < T:
            out["contacts"][j] = 1.0
    out["ann_mask"] = torch.tensor(True)
    return out


def decode_sample(sample: dict, cfg: ClipConfig, mel: LogMel, rng: np.random.Generator | None) -> dict:
    """Raw WebDataset sample {"__key__", ["__url__"], "mp4", "txt", ["json"]} -> one clip (see the batch contract).

    ``rng`` picks the clip start and crop (training); None gives the centred clip (validation).
    """
    if "mp4" not in sample:
        raise SampleError("no .mp4 in sample")
    if "txt" not in sample:
        raise SampleError("no caption (.txt) in sample")
    caption = sample["txt"].decode("utf-8").strip()
    ann = json.loads(sample["json"].decode("utf-8")) if "json" in sample else None
    frames, src_idx, src_fps = decode_video(sample["mp4"], cfg, rng)
    geom = plan_resize_crop(frames.shape[1], frames.shape[2], cfg.height, cfg.width, rng)
    video = frames_to_clip(frames, geom)
    # None for no track, an empty one or one of digital zeros: audio_mask False, never "silence"
    wav = read_audio(sample["mp4"], src_idx[0] / src_fps, cfg.num_samples / cfg.sample_rate, cfg.sample_rate,
                     mono=True)
    audio = torch.zeros(cfg.num_samples) if wav is None else torch.from_numpy(wav[0, :cfg.num_samples])
    with torch.no_grad():
        log_mel = mel(audio)
    labels = empty_annotations(cfg) if ann is None else resample_annotations(ann, src_idx, src_fps, geom, cfg)
    return {"key": sample["__key__"], "url": str(sample.get("__url__", "")), "caption": caption, "video": video,
            "fps": torch.tensor(cfg.fps, dtype=torch.float32), "audio": audio, "mel": log_mel,
            "audio_mask": torch.tensor(wav is not None), **labels}

