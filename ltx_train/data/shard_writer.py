"""Write WebDataset shards (``<split>-%06d.tar``) and their ``manifest.json`` atomically.

A shard is written under ``<name>.tmp`` and renamed when complete, and the manifest is written last
(also via a temporary name), so a reader never sees a half-written shard or a manifest that points
at shards which do not exist yet.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

from ltx_train.data.synth import VAL_SEED_OFFSET, SynthConfig, render_clip, split_seeds  # noqa: F401 (re-export)
from ltx_train.media import write_mp4

MANIFEST = "manifest.json"


def mp4_bytes(frames, fps: float, audio=None, sample_rate: int = 24000, crf: int = 18) -> bytes:
    """Encode with ``write_mp4`` into a temporary file and return the bytes."""
    with tempfile.TemporaryDirectory(prefix="ltx-mp4-") as tmp:
        path = Path(tmp) / "clip.mp4"
        write_mp4(path, frames, fps, audio, sample_rate, crf=crf)
        return path.read_bytes()


def synth_sample(seed: int, cfg: SynthConfig) -> dict:
    """Render and encode one clip into a WebDataset sample dict (bytes values)."""
    clip = render_clip(seed, cfg)
    return {"__key__": clip.key,
            "mp4": mp4_bytes(clip.frames, cfg.fps, clip.audio, cfg.sample_rate, cfg.crf),
            "txt": clip.caption.encode("utf-8"),
            "json": json.dumps(clip.annotations).encode("utf-8")}


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def write_shards(out: str | Path, split: str, samples: Iterable[dict], shard_size: int) -> list[dict]:
    """Stream samples into ``<out>/<split>-%06d.tar``; returns [{"file", "num_samples"}] per shard.

    Shards of this split left over from an earlier, larger run are deleted, so a glob of
    ``<split>-*.tar`` always matches the manifest.
    """
    import webdataset as wds  # here, not at the top: it imports torch (~3 s), which render workers never need

    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = []
    writer, tmp, count = None, None, 0

    def close():
        if writer is not None:
            writer.close()
            os.replace(tmp, tmp.with_suffix(""))
            shards.append({"file": tmp.with_suffix("").name, "num_samples": count})

    try:
        for sample in samples:
            if writer is None or count == shard_size:
                close()
                tmp = out / f"{split}-{len(shards):06d}.tar.tmp"
                writer, count = wds.TarWriter(open(tmp, "wb")), 0  # TarWriter.close() closes the stream
            writer.write(sample)
            count += 1
        close()
        writer = None
    finally:
        if writer is not None:  # interrupted: never leave a partial shard behind
            writer.close()
            tmp.unlink(missing_ok=True)
    keep = {s["file"] for s in shards}
    for old in out.glob(f"{split}-*.tar"):
        if re.fullmatch(rf"{re.escape(split)}-\d{{6}}\.tar", old.name) and old.name not in keep:
            old.unlink()
    return shards


def _render_worker(args) -> dict:
    seed, cfg = args
    return synth_sample(seed, cfg)


def _samples(seeds: list[int], cfg: SynthConfig, pool) -> Iterator[dict]:
    if pool is None:
        return (synth_sample(s, cfg) for s in seeds)
    return pool.imap(_render_worker, [(s, cfg) for s in seeds], chunksize=4)  # ordered: deterministic shards


def write_synthetic_shards(out: str | Path, n_train: int, n_val: int, cfg: SynthConfig | None = None,
                           shard_size: int = 64, workers: int = 1, seed: int = 0) -> dict:
    """Render ``n_train`` + ``n_val`` clips into ``<out>/{train,val}-%06d.tar`` plus ``manifest.json``.

    Output is identical for any ``workers`` (clips are rendered in parallel, written in seed order).
    Returns the manifest dict (also written to ``<out>/manifest.json``).
    """
    cfg = cfg or SynthConfig()
    seeds = split_seeds(seed, n_train, n_val)
    # spawn, not fork: callers (pytest, Lightning) may hold torch/OpenMP threads that fork would copy
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        splits = {}
        for split, split_seed_list in seeds.items():
            shards = write_shards(out, split, _samples(split_seed_list, cfg, pool), shard_size)
            splits[split] = {"num_samples": len(split_seed_list), "shards": shards,
                             "seeds": [split_seed_list[0], split_seed_list[-1]] if split_seed_list else []}
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    manifest = {"format": "ltx-train-webdataset-v1", "source": "synthetic",
                "generator": {"name": "ltx_train.data.synth", "seed": seed, "shard_size": shard_size,
                              "config": json.loads(json.dumps(asdict(cfg)))},  # as JSON reads it
                "splits": splits}
    write_json_atomic(Path(out) / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def shard_urls(folder: str | Path, split: str) -> list[str]:
    """Paths of a split's shards in order, as listed by the manifest."""
    folder = Path(folder)
    return [str(folder / s["file"]) for s in read_manifest(folder)["splits"][split]["shards"]]

