"""The sample stream behind ``VideoDataModule``: shards -> raw samples -> shuffle -> decode -> batches.

Determinism. Everything random is seeded from (seed, epoch, rank, worker): the shard order (or, in
resampled mode, the shards drawn with replacement), the shuffle buffer, and each clip's start and crop
(which also mixes in the raw sample's index in the stream). Ranks and workers therefore read different
data, and a fixed seed reproduces the same stream. One-pass mode gives each rank a slice of the shard
list (like ``wds.split_by_node``, but with the rank the DataModule got from the trainer: worker
processes cannot see the process group) and then ``wds.split_by_worker``; resampled mode draws
shards independently per rank and worker.

Validation on several ranks (``reader_samples`` set) splits samples instead: every reader (rank x
worker) walks all val shards and takes every ``readers``-th raw sample, up to ``reader_samples``
decoded clips, the same number for each. So every rank runs the same number of val batches, which
sharded strategies need (FSDP and ZeRO-3 gather weights collectively in every forward); the last
``total % readers`` samples are not scored, and a skipped sample is replaced by the reader's next one.

Batches are assembled inside the worker (the DataLoader runs with ``batch_size=None``), so every batch
comes from one worker and carries that worker's position::

    batch["skipped"]    = int64 () samples this worker skipped so far in this epoch's stream
    batch["__stream__"] = {"role", "epoch", "worker", "batches", "raw", "skipped", "bad"}

``bad`` holds this worker's bad-sample counts per kind and per shard since its previous batch, and the
worker stops the run when too much of what it reads is bad (``ltx_train.data.badsamples``).

``raw`` counts samples pulled after the shuffle buffer, decodable or not. Resuming rebuilds the same
(seed, epoch) stream and discards ``raw`` samples *before* decoding (tar bytes are read, nothing is
decoded); that replays the shard RNG, shuffle buffer and per-clip RNGs exactly. ``StreamPosition``
folds the records of consumed batches into the state a checkpoint stores.
"""
from __future__ import annotations

import itertools
import random
import warnings

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, default_collate, get_worker_info
from webdataset.utils import make_seed

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.data.badsamples import BadSamples, classify
from ltx_train.data.badsamples import SkippedSampleWarning  # noqa: F401  (re-exported: callers import it from here)
from ltx_train.data.threads import one_thread
from ltx_train.data.decode import DECODE_ERRORS, ClipConfig, decode_sample

MAX_CONSECUTIVE_SKIPS = 1000  # a stream that decodes nothing should fail, not spin forever


def _split(total: int, part: int, parts: int) -> int:
    """Share of ``total`` for ``part`` of ``parts`` (the first ``total % parts`` get one more)."""
    q, r = divmod(total, parts)
    return q + (part < r)


class ShardStream(IterableDataset):
    """Batches of decoded clips from WebDataset shards; see the module docstring.

    batches_per_epoch: batches per epoch on this rank (resampled mode), None = one pass over the shards.
    max_samples: cap on samples per pass on this rank (validation), None = all.
    reader_samples: one-pass only: split samples (not shards) over ranks x workers, each reader yielding this
        many decoded clips (the DataModule sets it for validation on several ranks), None = split shards.
    bad_limits: ``BadSamples`` keywords (max_bad_fraction, window, min_samples) of each worker's bad-data stop.
    """

    def __init__(self, urls: list[str], clip: ClipConfig, mel: MelConfig, batch_size: int, *, role: str,
                 train: bool, seed: int, resampled: bool = False, shuffle_buffer: int = 0,
                 batches_per_epoch: int | None = None, max_samples: int | None = None,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0, bad_limits: dict | None = None,
                 reader_samples: int | None = None):
        if resampled and batches_per_epoch is None:
            raise ValueError("a resampled (infinite) stream needs batches_per_epoch")
        self.urls, self.clip, self.mel, self.batch_size = list(urls), clip, mel, batch_size
        self.role, self.train, self.seed, self.resampled = role, train, seed, resampled
        self.shuffle_buffer, self.batches_per_epoch, self.max_samples = shuffle_buffer, batches_per_epoch, max_samples
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.bad_limits = dict(bad_limits or {})
        self.reader_samples = None if resampled else reader_samples
        self.epoch, self._next_epoch = 0, 0
        self._resume: dict | None = None   # {"epoch", "workers"} waiting for its epoch to start
        self._start: dict[int, dict] = {}  # per-worker start position of the current epoch
        # DataLoader worker i plays stream worker (i + _rotate) % n this epoch: a resumed epoch restarts the
        # DataLoader's round-robin at worker 0, so that worker must continue the stream due next
        self._rotate = 0

    # ---- epochs and resume (called in the main process, before workers copy the dataset) ----
    def begin_epoch(self, trainer_epoch: int | None = None) -> None:
        """Start the next epoch of the stream, or finish the one a checkpoint stopped in.

        Data epochs count passes over the stream and may lag the trainer's epoch by one after a resume.
        ``trainer_epoch`` only settles whether a resumed one-pass epoch (whose length is unknown) was
        complete: Lightning moves to a new epoch exactly when the checkpointed one had ended.
        """
        epoch, start, rotate = self._next_epoch, {}, 0
        resume, self._resume = self._resume, None
        if resume is not None:
            done = resume["done"]
            if done is None:
                done = trainer_epoch is not None and trainer_epoch > resume["epoch"]
            if not done:
                epoch, start, rotate = resume["epoch"], resume["workers"], resume["rotate"]
            else:
                epoch = resume["epoch"] + 1
        self.epoch, self._next_epoch, self._start, self._rotate = epoch, epoch + 1, start, rotate

    def resume_from(self, epoch: int, workers: dict[int, dict], saved_num_workers: int,
                    last_worker: int | None = None) -> None:
        """Continue ``epoch`` after the consumed per-worker positions ``workers`` (from StreamPosition);
        ``last_worker``: the stream worker of the last consumed batch (the next one comes from the one after)."""
        n = max(self.num_workers, 1)
        workers = {int(w): dict(p) for w, p in workers.items()}
        rotate = 0 if last_worker is None else (int(last_worker) + 1) % n
        if max(saved_num_workers, 1) != n and workers:
            rotate = 0
            warnings.warn(f"{self.role} data was checkpointed with num_workers={saved_num_workers} but runs with "
                          f"{self.num_workers}: resuming approximately (each worker skips an equal share)")
            tot = {k: sum(p[k] for p in workers.values()) for k in ("batches", "raw", "skipped")}
            workers = {w: {k: _split(v, w, n) for k, v in tot.items()} for w in range(n)}
        done = None if self.batches_per_epoch is None else all(
            workers.get(w, {"batches": 0})["batches"] >= self.worker_batches(w, n) for w in range(n))
        self._resume = {"epoch": int(epoch), "workers": workers, "done": done, "rotate": rotate}

    def worker_batches(self, worker: int, num_workers: int) -> int | None:
        return None if self.batches_per_epoch is None else _split(self.batches_per_epoch, worker, num_workers)

    def __len__(self) -> int:
        if self.batches_per_epoch is None:
            raise TypeError(f"the {self.role} stream is one pass over its shards; its length is not known")
        return self.batches_per_epoch

    # ---- iteration (runs in the worker) ----
    def __iter__(self):
        info = get_worker_info()
        worker, n = ((info.id + self._rotate) % info.num_workers, info.num_workers) if info is not None else (0, 1)
        start = self._start.get(worker, {"batches": 0, "raw": 0, "skipped": 0})
        return self._batches(worker, n, dict(start))

    def _raw_samples(self, worker: int, num_workers: int, counts: dict):
        seed = make_seed(self.seed, self.epoch, self.rank, worker)

        def on_error(exn: Exception) -> bool:  # unreadable shard / tar member: warn, count, go on
            if not counts["replaying"]:
                counts["skipped"] += 1
                # webdataset appends the shard's URL to the exception's args
                url = next((a for a in reversed(exn.args) if isinstance(a, str) and a in self.urls), None)
                counts["bad"].bad("unreadable_shard", url, f"unreadable {self.role} shard {url or '?'}", repr(exn))
            return True

        if self.resampled:  # draws shards with replacement, independently per rank and worker
            stages = [wds.ResampledShards(self.urls, seed=seed, worker_seed=lambda: 0, deterministic=True)]
        else:
            urls = list(self.urls)
            if self.train:  # same permutation on every rank, then a disjoint slice per rank and worker
                random.Random(make_seed(self.seed, self.epoch)).shuffle(urls)
            if self.reader_samples is None:
                mine = [dict(url=u) for u in urls[self.rank::self.world_size]]  # may be empty on a high rank
                stages = [lambda: iter(mine), wds.split_by_worker]
            else:   # every reader walks all shards and takes every readers-th sample (module doc)
                stages = [lambda: iter([dict(url=u) for u in urls])]
        stages.append(wds.tarfile_to_samples(handler=on_error))
        if self.reader_samples is not None and not self.resampled:
            reader, readers = self.rank * num_workers + worker, self.world_size * num_workers
            stages.append(lambda src: itertools.islice(src, reader, None, readers))
        if self.shuffle_buffer > 1:
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=random.Random(seed)))
        return iter(wds.DataPipeline(*stages))

    def _batches(self, worker: int, num_workers: int, pos: dict):
        counts = {"skipped": pos["skipped"], "replaying": True, "bad": BadSamples(self.role, **self.bad_limits)}
        raw = self._raw_samples(worker, num_workers, counts)
        for _ in range(pos["raw"]):  # resume: replay without decoding
            if next(raw, None) is None:
                return
        counts["replaying"] = False
        quota = self.worker_batches(worker, num_workers)
        limit = None if self.max_samples is None else _split(self.max_samples, worker, num_workers)
        if self.reader_samples is not None:
            limit = self.reader_samples if limit is None else min(limit, self.reader_samples)
        mel, base = LogMel(self.mel), make_seed(self.seed, self.epoch, self.rank, worker)
        n_raw, n_batches, produced, failures, buf = pos["raw"], pos["batches"], pos["batches"] * self.batch_size, 0, []
        while quota is None or n_batches < quota:
            sample = None if limit is not None and produced >= limit else next(raw, None)
            if sample is None:  # end of this worker's shards (or of its val_max_samples share)
                if buf and not self.train:
                    yield self._batch(buf, worker, n_batches + 1, n_raw, counts["skipped"], counts["bad"].take())
                return
            n_raw += 1
            rng = np.random.default_rng([base, n_raw]) if self.train else None
            try:
                with one_thread(get_worker_info() is None):
                    buf.append(decode_sample(sample, self.clip, mel, rng))
                produced, failures = produced + 1, 0
                counts["bad"].good(sample.get("__url__"))
            except DECODE_ERRORS as exn:
                counts["skipped"], failures = counts["skipped"] + 1, failures + 1
                url = sample.get("__url__")  # bad() warns, counts, and raises TooManyBadSamples past the limit
                counts["bad"].bad(classify(exn), url, f"{self.role} sample {sample.get('__key__')!r} from shard {url}",
                                  f"{type(exn).__name__}: {exn}", key=sample.get("__key__"))
                if failures >= MAX_CONSECUTIVE_SKIPS:
                    raise RuntimeError(f"{failures} consecutive undecodable samples in {self.role} shards "
                                       f"{self.urls[:3]}...; is this a dataset of mp4/txt/json samples?") from exn
                continue
            if len(buf) == self.batch_size:
                n_batches += 1
                yield self._batch(buf, worker, n_batches, n_raw, counts["skipped"], counts["bad"].take())
                buf = []

    def _batch(self, samples: list[dict], worker: int, batches: int, raw: int, skipped: int,
               bad: dict | None = None) -> dict:
        batch = default_collate(samples)  # in a worker it stacks straight into shared memory: one copy less
        batch["skipped"] = torch.tensor(skipped, dtype=torch.int64)
        batch["__stream__"] = {"role": self.role, "epoch": self.epoch, "worker": worker,
                               "batches": batches, "raw": raw, "skipped": skipped, "bad": bad or {}}
        return batch


class EpochLoader(DataLoader):
    """DataLoader that starts its ShardStream's epoch before workers copy the dataset.

    ``epoch_fn`` (set after construction) returns the trainer's epoch, or None without a trainer.
    Workers must not be persistent: they would keep the copy of the first epoch.
    """

    epoch_fn = None

    def __init__(self, *args, **kwargs):
        # its own generator: creating an iterator draws the workers' base seed from it, not from torch's
        # global RNG, so training randomness does not depend on when (or whether, after a resume) the
        # DataLoader iterators were made; it is reseeded per (seed, epoch) below
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(*args, **kwargs)

    def __iter__(self):
        self.dataset.begin_epoch(self.epoch_fn() if self.epoch_fn is not None else None)
        self.generator.manual_seed(make_seed(self.dataset.seed, self.dataset.epoch, self.dataset.rank))
        return super().__iter__()

    # Lightning checks that a DataLoader is resumable before resuming mid-epoch. This one is, but its
    # position is checkpointed by the DataModule (which sees what was consumed), so these are empty.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None  # nothing to restore here: see the comment above


class StreamPosition:
    """What has been consumed of one role's stream, folded from each consumed batch's ``__stream__``."""

    def __init__(self):
        self.epoch: int | None = None
        self.workers: dict[int, dict] = {}
        self.skipped_before = 0   # skipped in earlier epochs
        self.batches_before = 0   # batches consumed in earlier epochs
        self.last_worker: int | None = None  # stream worker of the last consumed batch

    def update(self, info: dict) -> None:
        if info["epoch"] != self.epoch:
            self.skipped_before, self.batches_before = self.skipped, self.batches
            self.epoch, self.workers = info["epoch"], {}
        self.workers[int(info["worker"])] = {k: int(info[k]) for k in ("batches", "raw", "skipped")}
        self.last_worker = int(info["worker"])

    @property
    def skipped(self) -> int:
        return self.skipped_before + sum(p["skipped"] for p in self.workers.values())

    @property
    def batches(self) -> int:
        return self.batches_before + sum(p["batches"] for p in self.workers.values())

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "workers": {w: dict(p) for w, p in self.workers.items()},
                "skipped_before": self.skipped_before, "batches_before": self.batches_before,
                "last_worker": self.last_worker}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.workers = {int(w): dict(p) for w, p in state["workers"].items()}
        self.skipped_before, self.batches_before = int(state["skipped_before"]), int(state["batches_before"])
        self.last_worker = state.get("last_worker")  # absent in older checkpoints: no rotation
