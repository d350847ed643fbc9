"""``LiveSyntheticDataModule``: the synthetic physics world rendered on the fly, no mp4 and no shards.

For machines that cannot carry PyAV/decord (or should not spend time on shards): the batches have
the keys, shapes, dtypes and meaning of ``VideoDataModule``'s (``data/README.md``, batch contract),
``url`` is ``live://synthetic/<role>``, and the clip of a seed equals the one ``ltx-shards synth``
writes for that seed, decoded, up to H.264/AAC compression (measured in ``tests/test_live_data.py``).
Nothing here imports av, decord or webdataset. Seeds, epochs and workers: ``ltx_train.data.live_stream``.

Resume. ``state_dict()`` holds the seed and (epoch, batches) of the last train batch the trainer
consumed (``on_before_batch_transfer`` records it); after ``load_state_dict()`` the epoch continues
with the next batch, in the same order for any ``num_workers``, without rendering the skipped part.
"""
from __future__ import annotations

import warnings

import lightning as L
import torch
from torch.utils.data import DataLoader

from ltx_train.audio.mel import MelConfig
from ltx_train.data.live_stream import LiveStream
from ltx_train.data.synth import SynthConfig


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"LiveSyntheticDataModule: {message}")


class LiveLoader(DataLoader):
    """Starts its stream's epoch (in the main process) before workers are created or resumed."""

    def __init__(self, *args, **kwargs):
        # its own generator: making an iterator draws the workers' base seed from it, not from torch's
        # global RNG, so the training noise does not depend on when the iterators were made (they are
        # made at a different moment after a resume); the streams need no worker randomness
        kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        super().__init__(*args, **kwargs)

    def __iter__(self):
        self.dataset.begin_epoch()
        return super().__iter__()

    # Lightning checks that a loader is resumable before resuming mid-epoch; the position is kept by
    # the DataModule (which sees what was consumed), so these are empty.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None  # nothing to restore here: see the comment above


class IndexedDataModule(L.LightningDataModule):
    """What the DataModules over an ``IndexStream`` share: loaders, the consumed position, resume.
    Subclasses set ``self.seed``, ``self.batch_size``, ``num_workers``, ``persistent_workers``,
    ``pin_memory`` and fill ``self.streams`` in ``setup`` (resuming a new train stream with
    ``self._resume_train(stream)``)."""

    what = "IndexedDataModule"

    def _init_positions(self) -> None:
        self.streams: dict = {}
        self.position = {"epoch": None, "batches": 0}  # last consumed train batch
        self.batches_before = 0                         # train batches consumed in earlier epochs

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _resume_train(self, stream) -> None:
        if self.position["epoch"] is not None:
            stream.resume_from(self.position["epoch"], self.position["batches"])

    def _loader(self, role: str) -> LiveLoader:
        if role not in self.streams:
            self.setup("fit" if role == "train" else "validate")
        if role not in self.streams:
            raise RuntimeError(f"{self.what}: there is no {role} data (num_val=0 or no {role} split)")
        return LiveLoader(self.streams[role], batch_size=None, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.persistent_workers and self.num_workers > 0)

    def train_dataloader(self) -> LiveLoader:
        return self._loader("train")

    def val_dataloader(self) -> LiveLoader:
        return self._loader("val")

    # ---- positions and checkpoints ----
    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        info = batch.pop("__stream__", None) if isinstance(batch, dict) else None
        if info is not None and info["role"] == "train":
            if info["epoch"] != self.position["epoch"]:
                self.batches_before += self.position["batches"]
            self.position = {"epoch": info["epoch"], "batches": info["batches"]}
        return batch

    @property
    def skipped(self) -> dict[str, int]:
        """Same shape as ``VideoDataModule.skipped``; nothing is skipped while reading."""
        return {"train": 0, "val": 0}

    def state_dict(self) -> dict:
        return {"seed": self.seed, "train": dict(self.position), "batches_before": self.batches_before,
                "samples_seen": (self.batches_before + self.position["batches"]) * self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed:
            warnings.warn(f"data seed {self.seed} differs from the checkpoint's {state['seed']}; "
                          "using the checkpoint's so the resumed run continues the same stream")
            self.seed = state["seed"]
            for stream in self.streams.values():
                stream.seed = self.seed
        self.position, self.batches_before = dict(state["train"]), int(state["batches_before"])
        if "train" in self.streams:
            self._resume_train(self.streams["train"])


class LiveSyntheticDataModule(IndexedDataModule):
    what = "LiveSyntheticDataModule"

    def __init__(self, num_train: int | None = 256, num_val: int = 32, seed: int = 0, num_frames: int = 25,
                 fps: float = 24.0, height: int = 64, width: int = 64, sample_rate: int = 24000,
                 hop_length: int = 250, n_mels: int = 64, n_fft: int = 1024, win_length: int | None = None,
                 batch_size: int = 4, val_batch_size: int | None = None, num_workers: int = 0,
                 persistent_workers: bool = False, pin_memory: bool = False, shuffle: bool = True,
                 epoch_size: int | None = None, val_max_samples: int | None = None, min_objects: int = 1,
                 max_objects: int = 3, palette: str = "default", camera: str | None = None,
                 gravity: str | None = None, ambience_db: float = -45.0, cache_dir: str | None = None):
        """num_train: train clips (seeds ``seed + i``), repeated every epoch; None = infinite (new clips
        every epoch; needs ``epoch_size``). num_val: val clips (seeds ``seed + 1e9 + i``).
        epoch_size: train clips per epoch on each rank; default ``num_train // world_size``.
        val_max_samples: cap on val clips per rank. win_length: STFT window; None = min(n_fft, 4 * hop).
        palette / camera / gravity: generator options (``SynthConfig``): the look, a forced camera
        motion and a forced gravity direction. cache_dir: keep rendered clips there (``RenderCache``), so
        later epochs of a finite set read instead of render.
        """
        super().__init__()
        self.save_hyperparameters()
        for name, value in [("num_frames", num_frames), ("height", height), ("width", width),
                            ("sample_rate", sample_rate), ("hop_length", hop_length), ("n_mels", n_mels),
                            ("n_fft", n_fft), ("batch_size", batch_size), ("max_objects", max_objects)]:
            _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}")
        _check(num_train is None or num_train >= 1, f"num_train must be None (infinite) or >= 1, got {num_train!r}")
        _check(num_val >= 0 and num_workers >= 0, "num_val and num_workers must be >= 0")
        _check(num_train is not None or epoch_size is not None, "num_train=None (infinite) needs epoch_size")
        for name, value in [("val_batch_size", val_batch_size), ("epoch_size", epoch_size),
                            ("val_max_samples", val_max_samples), ("win_length", win_length)]:
            _check(value is None or value >= 1, f"{name} must be None or >= 1, got {value!r}")
        _check(num_train is None or epoch_size is None or epoch_size <= num_train,
               f"epoch_size={epoch_size} exceeds num_train={num_train}")
        win_length = win_length or min(n_fft, 4 * hop_length)
        _check(win_length <= n_fft, f"win_length={win_length} exceeds n_fft={n_fft}")
        try:  # SynthConfig names the bad key (palette, camera, gravity, odd sizes, object counts)
            self.synth = SynthConfig(width=width, height=height, num_frames=num_frames, fps=float(fps),
                                     sample_rate=sample_rate, min_objects=min_objects, max_objects=max_objects,
                                     ambience_db=ambience_db, palette=palette, camera=camera, gravity=gravity)
        except ValueError as e:
            raise ValueError(f"LiveSyntheticDataModule: {e}") from e
        self.mel = MelConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                             win_length=win_length, n_mels=n_mels)
        self.num_train, self.num_val, self.seed, self.shuffle = num_train, num_val, seed, shuffle
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.persistent_workers, self.pin_memory = num_workers, persistent_workers, pin_memory
        self.epoch_size, self.val_max_samples, self.max_objects = epoch_size, val_max_samples, max_objects
        self._init_positions()

    def setup(self, stage: str | None = None) -> None:
        rank, world = self._rank_world()
        common = dict(synth=self.synth, mel=self.mel, seed=self.seed, max_objects=self.max_objects, rank=rank,
                      world_size=world, num_workers=self.num_workers, cache_dir=self.hparams.cache_dir)
        if stage in (None, "fit") and "train" not in self.streams:
            if self.num_train is not None:
                _check(self.num_train // world >= self.batch_size, f"num_train={self.num_train} over {world} "
                       f"rank(s) is less than one batch of {self.batch_size} per rank")
            self.streams["train"] = LiveStream(batch_size=self.batch_size, role="train", train=True,
                                               num_clips=self.num_train, clips_per_epoch=self.epoch_size,
                                               shuffle=self.shuffle, **common)
            self._resume_train(self.streams["train"])
        if stage in (None, "fit", "validate") and "val" not in self.streams and self.num_val:
            self.streams["val"] = LiveStream(batch_size=self.val_batch_size, role="val", train=False,
                                             num_clips=self.num_val, clips_per_epoch=self.val_max_samples,
                                             **common)
