"""``LatentDataModule`` (``data=latents``): batches read from a latent cache (``ltx-shards cache``).

No VAE, no text encoder: a batch holds what they would have produced, so the DiT stage and LoRA
train on the DiT's work alone. Batch keys (``B`` clips, ``L`` the encoder's ``max_length``):

    video_latent (B, Cv, Tv, Hv, Wv) float32   the VAE posterior mean (a sample of it with
    audio_latent (B, Ca, Ta) float32           ``sample_posterior=true``), not yet normalised
    text_hidden  (B, L, layers, D) float16     all hidden states, zero past each caption's tokens
    text_mask    (B, L) bool
    first_frame  (B, 3, H, W) float32          in [-1, 1] (caches written since first frames are stored)
    key, url, caption, fps, audio_mask, ann_mask, gravity, light, centers, velocities, obj_mask,
    contacts, skipped                          as in ``VideoDataModule``'s batch contract

Samples are read by index from memory-mapped safetensors files (``safe_open``: only the rows asked
for leave the disk). Epochs, rank slices, workers and exact resume are ``IndexStream``'s: every
epoch permutes the cache by (seed, epoch), each rank reads a disjoint slice, and a resumed run
continues after the last consumed batch.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ltx_train.data.latent_cache import EMPTY_TEXT, LABELS, LatentCacheError, iter_shard_paths, read_manifest
from ltx_train.data.live import IndexedDataModule
from ltx_train.data.live_stream import IndexStream


def empty_text_states(path: str | Path) -> torch.Tensor:
    """(L0, layers, D) float32: the cached states of the empty caption."""
    file = Path(path) / EMPTY_TEXT
    if not file.is_file():
        raise LatentCacheError(f"{file}: no such file (the latent cache is incomplete)")
    return load_file(str(file))["text_hidden"].float()


class LatentStream(IndexStream):
    """Batches of one split of a latent cache; items are sample indices over its shards in order."""

    name = "LatentStream"

    def __init__(self, path: str | Path, split: str, batch_size: int, *, role: str, train: bool, seed: int,
                 items_per_epoch: int | None = None, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, sample_posterior: bool = False):
        manifest = read_manifest(path)
        self.path, self.split, self.sample_posterior = Path(path), split, sample_posterior
        self.max_length = int(manifest["shapes"]["max_length"])
        shards = list(iter_shard_paths(path, split))   # names the manifest and split when it has none
        if not shards:
            raise LatentCacheError(f"{self.path}: split {split!r} holds no samples")
        self.files, counts = zip(*shards)
        for f in self.files:
            if not f.is_file():
                raise LatentCacheError(f"{f}: listed in {self.path / 'manifest.json'} but missing")
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        super().__init__(batch_size, role=role, train=train, seed=seed, num_items=int(self.starts[-1]),
                         items_per_epoch=items_per_epoch, shuffle=shuffle, rank=rank, world_size=world_size,
                         num_workers=num_workers)
        self._files: dict[int, object] = {}
        self._meta: dict[int, dict] = {}

    def worker_init(self) -> None:
        self._files, self._meta = {}, {}  # handles are opened per process

    def _open(self, s: int):
        if s not in self._files:
            f = safe_open(str(self.files[s]), framework="pt")
            meta = f.metadata()
            self._files[s] = f
            self._meta[s] = {k: json.loads(meta[k]) for k in ("keys", "captions", "urls")}
            self._meta[s]["first_frame"] = "first_frame" in f.keys()
        return self._files[s], self._meta[s]

    def load(self, item: int) -> dict:
        s = int(np.searchsorted(self.starts, item, side="right") - 1)
        j = item - int(self.starts[s])
        f, meta = self._open(s)
        row = {k: f.get_slice(k)[j:j + 1][0] for k in ("video_params", "audio_params", *LABELS)}
        lo, hi = f.get_slice("text_offsets")[j:j + 2].tolist()
        tokens = f.get_slice("text_hidden")[lo:hi]
        n = min(hi - lo, self.max_length)
        hidden = torch.zeros(self.max_length, *tokens.shape[1:], dtype=tokens.dtype)
        hidden[:n] = tokens[:n]
        mask = torch.zeros(self.max_length, dtype=torch.bool)
        mask[:n] = True
        v_mean, v_logvar = row.pop("video_params").float().chunk(2, dim=0)
        a_mean, a_logvar = row.pop("audio_params").float().chunk(2, dim=0)
        if self.sample_posterior:  # seeded by (seed, epoch, item): the same draw after a resume
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(self._shared[0]) * 7919 + item)
            v_mean = v_mean + (0.5 * v_logvar).exp() * torch.randn(v_mean.shape, generator=g)
            a_mean = a_mean + (0.5 * a_logvar).exp() * torch.randn(a_mean.shape, generator=g)
        if meta["first_frame"]:
            row["first_frame"] = f.get_slice("first_frame")[j:j + 1][0].float() / 127.5 - 1
        return {"key": meta["keys"][j], "url": meta["urls"][j], "caption": meta["captions"][j],
                "video_latent": v_mean, "audio_latent": a_mean, "text_hidden": hidden, "text_mask": mask, **row}


class LatentDataModule(IndexedDataModule):
    what = "LatentDataModule"

    def __init__(self, path: str, num_frames: int | None = None, fps: float | None = None, height: int | None = None,
                 width: int | None = None, batch_size: int = 4, val_batch_size: int | None = None, num_workers: int = 0,
                 persistent_workers: bool = False, pin_memory: bool = False, shuffle: bool = True,
                 seed: int = 0, epoch_size: int | None = None, val_max_samples: int | None = None,
                 sample_posterior: bool = False, train_split: str = "train", val_split: str | None = "val"):
        """path: a latent cache directory (``ltx-shards cache --out``). epoch_size: train clips per epoch
        on each rank (default: the split's size // world size). sample_posterior: train on a draw from
        each clip's cached posterior instead of its mean (decoded training uses the mean).
        num_frames / fps / height / width: the clips the cache holds, when given checked against its
        manifest (so a config's sample settings cannot silently disagree with the data)."""
        super().__init__()
        self.save_hyperparameters()
        self.manifest = read_manifest(path)   # fails now, naming the file, not when fitting starts
        self.path = str(Path(path).resolve())
        clip = self.manifest["clip"]
        for key, value in (("num_frames", num_frames), ("fps", fps), ("height", height), ("width", width)):
            if value is not None and float(value) != float(clip[key]):
                raise LatentCacheError(f"data.{key}={value}, but the latent cache {path} holds clips with "
                                       f"{key}={clip[key]} (see its manifest.json)")
        for split in (train_split, val_split):
            if split is not None and split not in self.manifest["splits"]:
                raise LatentCacheError(f"{Path(path) / 'manifest.json'}: no split {split!r} "
                                       f"(has {', '.join(self.manifest['splits'])}); set data.train_split / val_split")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"LatentDataModule: batch_size must be >= 1 and num_workers >= 0")
        self.seed, self.batch_size, self.val_batch_size = seed, batch_size, val_batch_size or batch_size
        self.num_workers, self.persistent_workers, self.pin_memory = num_workers, persistent_workers, pin_memory
        self._init_positions()

    def setup(self, stage: str | None = None) -> None:
        rank, world = self._rank_world()
        h = self.hparams
        common = dict(path=self.path, seed=self.seed, rank=rank, world_size=world, num_workers=self.num_workers,
                      sample_posterior=h.sample_posterior)
        if stage in (None, "fit") and "train" not in self.streams:
            self.streams["train"] = LatentStream(split=h.train_split, batch_size=self.batch_size, role="train",
                                                 train=True, items_per_epoch=h.epoch_size, shuffle=h.shuffle,
                                                 **common)
            self._resume_train(self.streams["train"])
        if stage in (None, "fit", "validate") and "val" not in self.streams and h.val_split is not None:
            self.streams["val"] = LatentStream(split=h.val_split, batch_size=self.val_batch_size, role="val",
                                               train=False, items_per_epoch=h.val_max_samples,
                                               **{**common, "sample_posterior": False})
