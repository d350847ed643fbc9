"""``VideoDataModule``: WebDataset shards of mp4 + caption + annotation JSON -> batches of clips.

Batches follow the contract in ``data/README.md`` (``key``, ``url``, ``caption``, ``video``, ``fps``, ``audio``,
``mel``, ``audio_mask``, ``ann_mask``, ``gravity``, ``light``, ``centers``, ``velocities``, ``obj_mask``,
``contacts``) plus ``skipped`` (int64 scalar, see below). Decoding: ``ltx_train.data.decode``; the
stream, its seeding and its resume: ``ltx_train.data.stream``.

Training reads shards with replacement (``resampled=True``, an infinite stream cut into epochs of
``epoch_size`` samples per rank) or as shuffled passes (``resampled=False``); validation reads each
rank's share of the val shards once, centred clips, in order.

Skipped samples. A sample that cannot be decoded (truncated mp4, invalid JSON, missing caption, clip
too short) is skipped with a ``SkippedSampleWarning`` naming its key and shard URL. The count lives
where decoding happens (possibly a worker process), so each batch carries its worker's running count;
when Lightning moves a batch to the device, ``on_before_batch_transfer`` folds it into the
DataModule's totals and rewrites ``batch["skipped"]`` as the run total for that split on this rank.
A LightningModule logs it as ``self.log("data/skipped", batch["skipped"].float(), reduce_fx="max",
sync_dist=...)``; ``datamodule.skipped`` holds the same totals. (Read from a plain DataLoader, without
Lightning, ``batch["skipped"]`` is the count of the worker that made the batch.)

Bad data (``ltx_train.data.badsamples``). Every skip has a kind (``bad_video``, ``missing_caption``,
``bad_json``, ``too_short``, ``unreadable_shard``, ...); ``skipped_by_kind`` holds the per-kind totals of
consumed batches (``BadSampleMetrics`` logs them as ``data/skipped_<kind>``) and ``teardown`` logs a
summary naming the worst shards. A reader stops the run (``TooManyBadSamples``) when more than
``max_bad_fraction`` of its last ``bad_window`` samples were bad, once it has read ``bad_min_samples``.
``setup`` checks every local shard (header and end-of-archive marker) and names the damaged ones.

Resume. ``state_dict()`` stores the seed and, per worker, the position (batches, raw samples, skipped)
of the last train batch the trainer *consumed* (prefetched batches are not counted). After
``load_state_dict()`` the train epoch that Lightning resumes continues exactly where it stopped.
- num_workers=0: the batch sequence is identical to an uninterrupted run.
- num_workers>0: every worker continues its own stream exactly, and the DataLoader's worker 0 takes the
  stream of the worker due next (the DataLoader restarts its round-robin at worker 0): the same batches
  follow in the same order.
- Under DDP only rank 0's state is saved; ranks step in lockstep, so all ranks resume from it.
- Resuming reads (without decoding) the part of the epoch already consumed.
"""
from __future__ import annotations

import logging
import warnings

import lightning as L
import torch

from ltx_train.audio.mel import MelConfig
from ltx_train.data.badsamples import SkipTally, screen_shards
from ltx_train.data.decode import ClipConfig
from ltx_train.data.shardlist import count_samples, resolve_shards
from ltx_train.data.stream import EpochLoader, ShardStream, StreamPosition

_ROLES = ("train", "val")
log = logging.getLogger("ltx_train.data")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"VideoDataModule: {message}")


class VideoDataModule(L.LightningDataModule):
    def __init__(self, train_shards: str | list[str] | None = None, val_shards: str | list[str] | None = None,
                 num_frames: int = 25, fps: float = 24.0, height: int = 64, width: int = 64,
                 sample_rate: int = 24000, hop_length: int = 250, n_mels: int = 64, n_fft: int = 1024,
                 win_length: int | None = None, batch_size: int = 4, val_batch_size: int | None = None,
                 num_workers: int = 0, shuffle_buffer: int = 64, seed: int = 0, resampled: bool = True,
                 epoch_size: int | None = None, max_objects: int = 3, val_max_samples: int | None = None,
                 train_split: str = "train", val_split: str = "val", decode_threads: int | None = None,
                 pin_memory: bool = False, max_bad_fraction: float = 0.1, bad_window: int = 200,
                 bad_min_samples: int = 50):
        """Shard specs: brace pattern, glob, dataset directory (+ ``*_split``), URL, or a list of them.

        epoch_size: train samples per epoch on each rank (resampled mode); None = the number of
        train samples (from the manifest or the tar headers) divided by the world size.
        win_length: STFT window of the log-mel; None = min(n_fft, 4 * hop_length).
        decode_threads: decord threads per video reader, 0 = decord's choice; None = 0 when
        num_workers == 0, else 1 (see experiments/data_decode_speed.md).
        max_bad_fraction, bad_window, bad_min_samples: stop when more than this fraction of a reader's last
        ``bad_window`` samples (counted once it has read ``bad_min_samples``), or of the shards, is bad.
        """
        super().__init__()
        self.save_hyperparameters()
        _check(train_shards is not None or val_shards is not None, "give train_shards and/or val_shards")
        for name, value in [("num_frames", num_frames), ("height", height), ("width", width),
                            ("sample_rate", sample_rate), ("hop_length", hop_length), ("n_mels", n_mels),
                            ("n_fft", n_fft), ("batch_size", batch_size), ("max_objects", max_objects)]:
            _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}")
        _check(isinstance(fps, (int, float)) and fps > 0, f"fps must be > 0, got {fps!r}")
        _check(num_workers >= 0 and shuffle_buffer >= 0, "num_workers and shuffle_buffer must be >= 0")
        _check(decode_threads is None or decode_threads >= 0, f"decode_threads must be >= 0, got {decode_threads}")
        if decode_threads is None:  # decord's own threading helps one process; workers already parallelise
            decode_threads = 0 if num_workers == 0 else 1
        for name, value in [("val_batch_size", val_batch_size), ("epoch_size", epoch_size),
                            ("val_max_samples", val_max_samples), ("win_length", win_length)]:
            _check(value is None or value >= 1, f"{name} must be None or >= 1, got {value!r}")
        _check(epoch_size is None or epoch_size >= batch_size,
               f"epoch_size={epoch_size} is smaller than one batch of {batch_size}")
        _check(isinstance(max_bad_fraction, (int, float)) and 0 <= max_bad_fraction <= 1,
               f"max_bad_fraction must be in [0, 1], got {max_bad_fraction!r}")
        _check(bad_window >= 1 and bad_min_samples >= 1, "bad_window and bad_min_samples must be >= 1")
        self.bad_limits = dict(max_bad_fraction=float(max_bad_fraction), window=bad_window, min_samples=bad_min_samples)
        win_length = win_length or min(n_fft, 4 * hop_length)
        _check(win_length <= n_fft, f"win_length={win_length} exceeds n_fft={n_fft}")
        # Resolve now, so a pattern that matches nothing fails when the config is built, not mid-fit.
        self.urls = {"train": resolve_shards(train_shards, train_split) if train_shards is not None else None,
                     "val": resolve_shards(val_shards, val_split) if val_shards is not None else None}
        self.clip = ClipConfig(num_frames, float(fps), height, width, sample_rate, max_objects, decode_threads)
        self.mel = MelConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                             win_length=win_length, n_mels=n_mels)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.shuffle_buffer, self.seed = num_workers, shuffle_buffer, seed
        self.resampled, self.epoch_size, self.val_max_samples = resampled, epoch_size, val_max_samples
        self.pin_memory = pin_memory
        self.streams: dict[str, ShardStream] = {}
        self.positions = {role: StreamPosition() for role in _ROLES}
        self._pending: dict | None = None  # train resume state loaded before the stream exists
        self.bad = {role: SkipTally() for role in _ROLES}
        self._screened: set[str] = set()

    # ---- streams and loaders ----
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _train_batches_per_epoch(self, world: int) -> int | None:
        if not self.resampled:
            return None
        size = self.epoch_size
        if size is None:
            total = count_samples(self.urls["train"])
            if total is None:
                raise ValueError("VideoDataModule: resampled=True over remote shards needs epoch_size")
            size = total // world
        _check(size >= self.batch_size, f"an epoch of {size} samples per rank is less than one batch "
                                        f"of {self.batch_size}; set epoch_size")
        return size // self.batch_size

    def _screen(self, role: str) -> None:
        """Name damaged shards once, before the stream (or the sample count) reads them."""
        if self.urls[role] is not None and role not in self._screened:
            self.urls[role] = screen_shards(self.urls[role], role, self.bad_limits["max_bad_fraction"])
            self._screened.add(role)

    def setup(self, stage: str | None = None) -> None:
        rank, world = self._rank_world()
        common = dict(clip=self.clip, mel=self.mel, seed=self.seed, rank=rank, world_size=world,
                      num_workers=self.num_workers, bad_limits=self.bad_limits)
        for role, stages in (("train", (None, "fit")), ("val", (None, "fit", "validate"))):
            if stage in stages and role not in self.streams:
                self._screen(role)
        if self.urls["train"] is not None and stage in (None, "fit") and "train" not in self.streams:
            self.streams["train"] = ShardStream(
                self.urls["train"], batch_size=self.batch_size, role="train", train=True,
                resampled=self.resampled, shuffle_buffer=self.shuffle_buffer,
                batches_per_epoch=self._train_batches_per_epoch(world), **common)
            self._warn_if_idle_workers("train", world)
            if self._pending is not None:
                self.streams["train"].resume_from(**self._pending)
                self._pending = None
        if self.urls["val"] is not None and stage in (None, "fit", "validate") and "val" not in self.streams:
            self.streams["val"] = ShardStream(
                self.urls["val"], batch_size=self.val_batch_size, role="val", train=False,
                max_samples=self.val_max_samples, reader_samples=self._val_reader_samples(world), **common)
            self._warn_if_idle_workers("val", world)

    def _val_reader_samples(self, world: int) -> int | None:
        """On several ranks, the clips each val reader (rank x worker) scores, equal for all: every rank
        then runs the same number of val batches (``ShardStream``'s doc). None on one rank, or when the
        shards are remote and cannot be counted (split by shard then; a sharded strategy may hang)."""
        if world == 1:
            return None
        total = count_samples(self.urls["val"])
        if total is None:
            warnings.warn("val shards are remote: validation splits them by shard, so ranks may run different "
                          "numbers of val batches (a hang under trainer=fsdp / deepspeed_zero3)")
            return None
        readers = world * max(self.num_workers, 1)
        _check(total >= readers, f"{total} val samples for {readers} readers (ranks x workers): each needs one")
        return total // readers

    def _warn_if_idle_workers(self, role: str, world: int) -> None:
        readers = world * max(self.num_workers, 1)
        if role == "val" and world > 1:
            return    # split by sample across ranks and workers (_val_reader_samples)
        if not (role == "train" and self.resampled) and len(self.urls[role]) < readers:
            warnings.warn(f"{len(self.urls[role])} {role} shards for {readers} readers (ranks x workers): "
                          "some readers get no shard; write more, smaller shards")

    def _loader(self, role: str) -> EpochLoader:
        if role not in self.streams:
            self.setup("fit" if role == "train" else "validate")
        if role not in self.streams:
            raise RuntimeError(f"VideoDataModule: no {role}_shards configured")
        loader = EpochLoader(self.streams[role], batch_size=None, num_workers=self.num_workers,
                             pin_memory=self.pin_memory)
        if role == "train":
            loader.epoch_fn = self._trainer_epoch
        return loader

    def _trainer_epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def train_dataloader(self) -> EpochLoader:
        return self._loader("train")

    def val_dataloader(self) -> EpochLoader:
        return self._loader("val")

    # ---- positions, skipped counts, checkpoints ----
    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """Record what the trainer consumed; ``batch["skipped"]`` becomes the run total of its split."""
        info = batch.pop("__stream__", None) if isinstance(batch, dict) else None
        if info is not None:
            pos = self.positions[info["role"]]
            pos.update(info)
            batch["skipped"] = torch.tensor(pos.skipped, dtype=torch.int64)
            self.bad[info["role"]].update(info.get("bad", {}))
        return batch

    @property
    def skipped_by_kind(self) -> dict[str, dict[str, int]]:
        """Samples skipped so far on this rank per role and kind (``badsamples.KINDS``), of consumed batches."""
        return {role: dict(tally.kinds) for role, tally in self.bad.items()}

    def teardown(self, stage: str) -> None:
        """The summary line of the run's bad data (per kind, worst shards), at the end of fit / validate."""
        for role, tally in self.bad.items():
            if tally.kinds or (role == "train" and stage == "fit"):
                (log.warning if tally.kinds else log.info)("%s", tally.summary(role))

    @property
    def skipped(self) -> dict[str, int]:
        """Samples skipped so far on this rank, per split role ("train", "val"), of consumed batches."""
        return {role: pos.skipped for role, pos in self.positions.items()}

    def state_dict(self) -> dict:
        train = self.positions["train"]
        return {"seed": self.seed, "num_workers": self.num_workers, "train": train.state_dict(),
                "val": self.positions["val"].state_dict(), "samples_seen": train.batches * self.batch_size,
                "bad": {role: tally.state_dict() for role, tally in self.bad.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed:
            warnings.warn(f"data seed {self.seed} differs from the checkpoint's {state['seed']}; "
                          "using the checkpoint's so the resumed run continues the same stream")
            self.seed = state["seed"]
            for stream in self.streams.values():
                stream.seed = self.seed
        for role in _ROLES:
            self.positions[role].load_state_dict(state[role])
            self.bad[role].load_state_dict(state.get("bad", {}).get(role, {}))  # older checkpoints have none
        train = self.positions["train"]
        if train.epoch is None:
            return
        self._pending = {"epoch": train.epoch, "workers": train.workers, "saved_num_workers": state["num_workers"],
                         "last_worker": train.last_worker}
        if "train" in self.streams:
            self.streams["train"].resume_from(**self._pending)
            self._pending = None
