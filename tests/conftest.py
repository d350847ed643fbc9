"""Shared fixtures: tiny shard sets written once per test session.

- ``synthetic_shards``: the physics-world generator's own shards (8 train + 4 val clips of
  64x64, 25 frames at 24 fps, 4 per shard) with its manifest.json; a Path to the folder.
- ``odd_shard``: one shard of hand-made edge cases (no audio, no JSON, truncated mp4, invalid JSON,
  missing caption) between good clips; a Path to the tar. ``odd_keys`` says which keys are which.
- ``ramp_clip``: factory for a clip whose grey level encodes the frame index, with an annotation.
- ``make_sample``: factory for in-memory WebDataset samples {"__key__", "mp4", "txt", "json"}.
- ``empty_audio_track``: factory for a video file whose audio stream holds no samples.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

# webdataset and the media writer (PyAV) are imported where the fixtures use them, so that the GPU
# tests (tests/test_gpu.py) run on a device machine that has neither

def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA: skip them (with the reason) where there is none."""
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="gpu test: no CUDA device here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tests use tiny tensors: a second intra-op thread only adds sync cost, and on a shared 2-core
    machine it can make each op many times slower while the other core is busy."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


ODD_KEYS = {"good": ["good-0", "noaudio", "nojson", "good-1"],
            "broken": ["truncated", "badjson", "nocaption"]}


def _sample(key: str, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
            sample_rate: int = 24000, ann: dict | None = None, caption: str | None = "a test clip") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        from ltx_train.media import write_mp4
        write_mp4(path, frames, fps, audio, sample_rate)
        sample = {"__key__": key, "mp4": path.read_bytes()}
    if caption is not None:
        sample["txt"] = caption.encode("utf-8")
    if ann is not None:
        sample["json"] = json.dumps(ann).encode("utf-8")
    return sample


@pytest.fixture(scope="session")
def make_sample():
    """make_sample(key, frames (T, H, W, 3) uint8, fps, audio=None, sample_rate=24000, ann=None, caption=...)."""
    return _sample


def _ramp_clip(num_frames: int = 25, size: int = 32, fps: float = 24.0, sample_rate: int = 24000):
    """Frames whose grey level encodes the frame index, a one-object annotation, a sine tone."""
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    frames[:] = (np.arange(num_frames) * 4 % 250).astype(np.uint8)[:, None, None, None]
    t = np.arange(num_frames) / fps
    centers = np.stack([t / t[-1] if num_frames > 1 else t, np.full_like(t, 0.5)], -1)[:, None]
    ann = {"fps": fps, "num_frames": num_frames, "gravity": [0.0, 1.0], "light": [0.2, 0.1, 0.8],
           "objects": [{"shape": "ball", "material": "rubber"}], "centers": centers.tolist(),
           "velocities": np.ones_like(centers).tolist(),
           "contacts": [{"frame": 3, "time": 3 / fps, "object": 0}]}
    audio = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(num_frames * sample_rate / fps)) / sample_rate)
    return frames, ann, audio.astype(np.float32)


def _empty_audio_track(path: Path, frames: int = 25, size: int = 32) -> Path:
    """A black 24 fps video whose AAC stream holds no samples (mkv keeps the empty track; mp4 drops it)."""
    import av
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=24)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=24000)
        a.layout = "mono"
        for _ in range(frames):
            for p in vs.encode(av.VideoFrame.from_ndarray(np.zeros((size, size, 3), np.uint8), format="rgb24")):
                c.mux(p)
        for p in [*vs.encode(), *a.encode()]:
            c.mux(p)
    return path


@pytest.fixture(scope="session")
def empty_audio_track():
    """empty_audio_track(path, frames=25, size=32) -> path of a video with an audio stream of zero samples."""
    return _empty_audio_track


@pytest.fixture(scope="session")
def ramp_clip():
    """ramp_clip(num_frames=25, size=32, fps=24.0, sample_rate=24000) -> (frames, ann, audio)."""
    return _ramp_clip


@pytest.fixture(scope="session")
def odd_keys() -> dict[str, list[str]]:
    """Keys in ``odd_shard``: "good" (decodable, in order) and "broken" (skipped)."""
    return ODD_KEYS


@pytest.fixture(scope="session")
def odd_shard(tmp_path_factory) -> Path:
    frames, ann, audio = _ramp_clip()
    good = _sample("good-0", frames, 24.0, audio, ann=ann)
    samples = [
        good,
        _sample("noaudio", frames, 24.0, None, ann=ann),
        {**good, "__key__": "truncated", "mp4": good["mp4"][: len(good["mp4"]) // 3]},
        _sample("nojson", frames, 24.0, audio, ann=None),
        {**good, "__key__": "badjson", "json": b'{"gravity": [0, 1], '},
        {k: v for k, v in {**good, "__key__": "nocaption"}.items() if k != "txt"},
        {**good, "__key__": "good-1"},
    ]
    path = tmp_path_factory.mktemp("odd") / "odd-000000.tar"
    import webdataset as wds
    with wds.TarWriter(str(path)) as sink:
        for s in samples:
            sink.write(s)
    return path


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    from ltx_train.data.shard_writer import write_synthetic_shards

    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_shards(out, n_train=8, n_val=4, shard_size=4, workers=1, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    """A tiny pretrained directory with random weights (``test_lora_training.tiny_base``)."""
    from test_lora_training import tiny_base
    return tiny_base(tmp_path_factory.mktemp("tiny_base") / "pretrained")


@pytest.fixture(scope="session")
def latent_cache(tiny_base_dir, synthetic_shards, tmp_path_factory) -> Path:
    """``ltx-shards cache`` of ``synthetic_shards`` (8 train + 4 val clips) with ``tiny_base_dir``'s encoders."""
    from ltx_train.data.cli import run as shards_cli
    out = tmp_path_factory.mktemp("latents") / "cache"
    shards_cli(["cache", "--shards", str(synthetic_shards), "--pretrained", str(tiny_base_dir), "--out", str(out),
                "--batch-size", "3"])
    return out
