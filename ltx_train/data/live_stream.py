"""Batches rendered in-process from the synthetic world: no mp4, no shards, no av/decord/webdataset.

A sample is ``render_clip(seed)`` put through the same post-decode steps as a shard sample
(``transforms.plan_resize_crop`` / ``frames_to_clip``, ``LogMel``, and the annotation -> label
mapping of ``decode.resample_annotations``, mirrored here because ``decode`` imports av and decord),
so it equals the decoded clip of that seed up to H.264/AAC compression.

Which seeds. Every epoch is a pure function of (seed, epoch, rank): the train set ``seed + i``
(``i < num_clips``) is permuted by ``default_rng([seed, epoch])`` (the same on every rank), each
rank takes a disjoint slice ``[rank::world]`` cut to an equal length (ranks stay in lockstep), and
the slice is cut into whole batches. With ``num_clips=None`` the train set is infinite: epoch e on
rank r renders fresh seeds ``seed + (e * world + r) * per_rank + k``. Val is ``seed + 1e9 + i``, in
order, each rank its slice, the last batch may be short.

Workers. Batch ``j`` of an epoch is made by worker ``(j - start) % num_workers``, where ``start`` is
the first batch to make (0, or the resume position). The DataLoader takes batches round-robin from
worker 0, so the batch order is the same for any ``num_workers``, after a resume as well. The epoch
and start live in a small shared-memory tensor, which ``persistent_workers`` read at every epoch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, default_collate, get_worker_info

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.data.synth import VAL_SEED_OFFSET, SynthConfig, render_clip
from ltx_train.data.threads import one_thread
from ltx_train.data.transforms import CropGeometry, frames_to_clip, plan_resize_crop


def empty_labels(num_frames: int, max_objects: int) -> dict[str, torch.Tensor]:
    T, K = num_frames, max_objects
    return {"ann_mask": torch.tensor(False), "gravity": torch.zeros(2), "light": torch.zeros(3),
            "centers": torch.zeros(T, K, 2), "velocities": torch.zeros(T, K, 2),
            "obj_mask": torch.zeros(K, dtype=torch.bool), "contacts": torch.zeros(T)}


def clip_labels(ann: dict, geom: CropGeometry, num_frames: int, max_objects: int) -> dict[str, torch.Tensor]:
    """Annotation JSON of a clip shown frame for frame -> labels; ``decode.resample_annotations`` with
    ``src_idx = arange(T)`` at the annotation's fps (``tests/test_live_data.py`` checks they agree)."""
    T, K = num_frames, max_objects
    out = empty_labels(T, K)
    n = min(len(ann["objects"]), K)  # objects beyond max_objects slots are dropped, as in decode
    if n:
        centers = np.asarray(ann["centers"], np.float32)[:T, :n]
        velocities = np.asarray(ann["velocities"], np.float32)[:T, :n]
        out["centers"][:, :n] = torch.from_numpy(geom.points(centers))
        out["velocities"][:, :n] = torch.from_numpy(geom.vectors(velocities))
        out["obj_mask"][:n] = True
    out["gravity"] = torch.from_numpy(geom.direction(np.asarray(ann["gravity"], np.float32)))
    light = np.asarray(ann["light"], np.float32)
    out["light"] = torch.from_numpy(np.concatenate([geom.points(light[:2]), light[2:]]).astype(np.float32))
    for c in ann["contacts"]:  # decode's rounding, which drops a contact in the last half frame
        j = int(np.floor(float(c["time"]) * float(ann["fps"]) + 0.5 + 1e-9))
        if 0 <= j < T:
            out["contacts"][j] = 1.0
    out["ann_mask"] = torch.tensor(True)
    return out


def render_sample(seed: int, synth: SynthConfig, mel: LogMel, max_objects: int, url: str) -> dict:
    """One clip in the batch contract of ``data/README.md`` (what ``decode.decode_sample`` returns)."""
    clip = render_clip(seed, synth)
    geom = plan_resize_crop(synth.height, synth.width, synth.height, synth.width, None)  # rendered at size
    audio = torch.from_numpy(clip.audio)
    with torch.no_grad():
        log_mel = mel(audio)
    return {"key": clip.key, "url": url, "caption": clip.caption, "video": frames_to_clip(clip.frames, geom),
            "fps": torch.tensor(synth.fps, dtype=torch.float32), "audio": audio, "mel": log_mel,
            "audio_mask": torch.tensor(True),
            **clip_labels(clip.annotations, geom, synth.num_frames, max_objects)}


class RenderCache:
    """Rendered samples on disk, one ``<seed>.npz`` per clip, under a folder named by a hash of
    everything that shapes a sample (generator, mel and label settings), so a changed setting never
    reads stale clips. Rendering a 64x64x25 clip costs ~50 ms of CPU, reading it back ~1 ms: with a
    finite train set the second epoch on is no longer bound by the renderer. Plain arrays only
    (``allow_pickle=False``); files are written to a temporary name and renamed, so workers can share it."""

    def __init__(self, root: str | Path, synth: SynthConfig, mel: MelConfig, max_objects: int):
        key = json.dumps([dataclasses.asdict(synth), dataclasses.asdict(mel), max_objects], sort_keys=True, default=str)
        self.dir = Path(root) / hashlib.sha1(key.encode()).hexdigest()[:16]
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, seed: int) -> dict | None:
        path = self.dir / f"{seed}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            out = {k: torch.from_numpy(z[k]) if z[k].dtype.kind != "U" else str(z[k]) for k in z.files}
        return out

    def put(self, seed: int, sample: dict) -> None:
        arrays = {k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in sample.items()}
        tmp = self.dir / f".{seed}.{os.getpid()}.npz"
        np.savez(tmp, **arrays)
        tmp.replace(self.dir / f"{seed}.npz")


class IndexStream(IterableDataset):
    """Batches of an indexed set for one role: epochs, rank slices, worker round-robin and resume (see
    the module docstring). Subclasses say which items an epoch holds (``epoch_items``) and how one is
    loaded (``load``); ``LiveStream`` renders seeds, ``data.latents.LatentStream`` reads cached latents.

    num_items: items in the set (None = infinite train set, then ``items_per_epoch`` is required).
    items_per_epoch: items per epoch on each rank; default ``num_items // world_size`` for train, the
    rank's whole slice for val (a smaller value caps it, like ``val_max_samples``).
    """

    name = "IndexStream"

    def __init__(self, batch_size: int, *, role: str, train: bool, seed: int, num_items: int | None,
                 items_per_epoch: int | None = None, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0):
        if num_items is None and (not train or items_per_epoch is None):
            raise ValueError(f"{self.name}({role}): an infinite set needs train=True and a per-epoch size")
        self.batch_size, self.role, self.train = batch_size, role, train
        self.seed, self.num_items, self.shuffle = seed, num_items, shuffle
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        if train:
            self.per_rank = items_per_epoch if items_per_epoch is not None else num_items // world_size
        else:
            self.per_rank = min(len(range(rank, num_items, world_size)), items_per_epoch or num_items)
        if train and self.per_rank < batch_size:
            raise ValueError(f"{self.name}({role}): {self.per_rank} clips per epoch on each of {world_size} "
                             f"rank(s) is less than one batch of {batch_size}")
        self._next_epoch = 0
        self._resume: tuple[int, int] | None = None
        self._shared = torch.zeros(2, dtype=torch.int64).share_memory_()  # (epoch, first batch) for workers

    # ---- epochs and resume (main process) ----
    def __len__(self) -> int:
        """Batches per epoch on this rank (train drops the last partial batch, val keeps it)."""
        return self.per_rank // self.batch_size if self.train else -(-self.per_rank // self.batch_size)

    def resume_from(self, epoch: int, batches: int) -> None:
        """Continue ``epoch`` after its first ``batches`` batches (the next epoch if those were all)."""
        self._resume = (int(epoch), int(batches))

    def begin_epoch(self) -> None:
        epoch, start = self._next_epoch, 0
        if self._resume is not None:
            (saved, done), self._resume = self._resume, None
            epoch, start = (saved + 1, 0) if done >= len(self) else (saved, done)
        self._next_epoch = epoch + 1
        self._shared.copy_(torch.tensor([epoch, start]))

    # ---- what an epoch holds ----
    def epoch_items(self, epoch: int) -> np.ndarray:
        """(items,) indices this rank reads in ``epoch``, in batch order (finite sets)."""
        if not self.train:
            return np.arange(self.rank, self.num_items, self.world_size)[:self.per_rank]
        order = (np.random.default_rng([self.seed, epoch]).permutation(self.num_items) if self.shuffle
                 else np.arange(self.num_items))
        return order[self.rank::self.world_size][:self.per_rank]

    def worker_init(self) -> None:
        """Called in each worker (or the main process) before it loads items."""

    def load(self, item: int) -> dict:
        """One sample of the batch contract for ``item`` (what ``epoch_items`` returned); every subclass
        defines it (``LiveStream`` renders a seed, ``LatentStream`` reads a cached clip)."""
        raise NotImplementedError(f"{type(self).__name__} must define load(item)")

    def collate(self, samples: list[dict]) -> dict:
        return default_collate(samples)  # in a worker it stacks straight into shared memory

    # ---- iteration (worker) ----
    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, start = (int(v) for v in self._shared.tolist())
        items = self.epoch_items(epoch)
        self.worker_init()
        for j in range(start + worker, len(self), workers):
            with one_thread(info is None):
                batch = self.collate([self.load(int(i)) for i in items[j * self.batch_size:(j + 1) * self.batch_size]])
            batch.setdefault("skipped", torch.tensor(0, dtype=torch.int64))  # kept for the batch contract
            batch["__stream__"] = {"role": self.role, "epoch": epoch, "batches": j + 1}
            yield batch


class LiveStream(IndexStream):
    """Batches of rendered clips for one role; see the module docstring. Items are render seeds.

    num_clips / clips_per_epoch: ``IndexStream``'s num_items / items_per_epoch.
    """

    name = "LiveStream"

    def __init__(self, synth: SynthConfig, mel: MelConfig, batch_size: int, *, role: str, train: bool, seed: int,
                 num_clips: int | None, clips_per_epoch: int | None = None, shuffle: bool = True,
                 max_objects: int = 3, rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 cache_dir: str | None = None):
        super().__init__(batch_size, role=role, train=train, seed=seed, num_items=num_clips,
                         items_per_epoch=clips_per_epoch, shuffle=shuffle, rank=rank, world_size=world_size,
                         num_workers=num_workers)
        self.synth, self.mel, self.max_objects, self.num_clips = synth, mel, max_objects, num_clips
        self.url = f"live://synthetic/{role}"
        self.cache_dir = cache_dir

    def epoch_seeds(self, epoch: int) -> np.ndarray:
        """(clips,) seeds this rank renders in ``epoch``, in batch order."""
        if not self.train:
            return self.seed + VAL_SEED_OFFSET + super().epoch_items(epoch)
        if self.num_clips is None:
            first = (epoch * self.world_size + self.rank) * self.per_rank
            if first + self.per_rank > VAL_SEED_OFFSET:
                raise RuntimeError(f"LiveStream({self.role}): epoch {epoch} would reach val seeds (>= 1e9 clips)")
            return self.seed + first + np.arange(self.per_rank)
        return self.seed + super().epoch_items(epoch)

    epoch_items = epoch_seeds

    def worker_init(self) -> None:
        self._mel = LogMel(self.mel)
        self._cache = RenderCache(self.cache_dir, self.synth, self.mel, self.max_objects) if self.cache_dir else None

    def load(self, seed: int) -> dict:
        sample = self._cache.get(seed) if self._cache is not None else None
        if sample is None:
            sample = render_sample(seed, self.synth, self._mel, self.max_objects, self.url)
            if self._cache is not None:
                self._cache.put(seed, sample)
        return sample
