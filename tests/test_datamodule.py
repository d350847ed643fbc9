"""Specifications of VideoDataModule: batch contract, skipping, config errors, order, resume."""
from __future__ import annotations

import json
import re

import lightning as L
import numpy as np
import pytest
import torch

from ltx_train.data.datamodule import VideoDataModule
from ltx_train.data.stream import SkippedSampleWarning

SMALL = dict(num_frames=9, height=32, width=32, batch_size=2, shuffle_buffer=4)


def consume(dm: VideoDataModule, loader, n: int | None = None) -> list[dict]:
    """Iterate like Lightning does: every consumed batch passes through on_before_batch_transfer."""
    out = []
    for batch in loader:
        out.append(dm.on_before_batch_transfer(batch, 0))
        if n is not None and len(out) == n:
            break
    return out


def keys(batches) -> list[str]:
    return [k for b in batches for k in b["key"]]


def test_batches_follow_the_contract_and_match_the_annotations(synthetic_shards):
    dm = VideoDataModule(val_shards=str(synthetic_shards / "val-{000000..000000}.tar"), batch_size=4)
    (batch,) = consume(dm, dm.val_dataloader())
    B, T, K = 4, 25, 3
    shapes = {"video": (B, 3, T, 64, 64), "fps": (B,), "audio": (B, 25000), "mel": (B, 64, 100),
              "audio_mask": (B,), "ann_mask": (B,), "gravity": (B, 2), "light": (B, 3),
              "centers": (B, T, K, 2), "velocities": (B, T, K, 2), "obj_mask": (B, K), "contacts": (B, T)}
    for name, shape in shapes.items():
        assert batch[name].shape == shape, name
        assert batch[name].dtype == (torch.bool if name.endswith("mask") else torch.float32), name
    assert batch["video"].min() >= -1 and batch["video"].max() <= 1 and batch["video"].std() > 0.05
    assert batch["audio_mask"].all() and batch["ann_mask"].all() and batch["audio"].abs().max() <= 1
    assert batch["key"] == [f"synth-{1_000_000_000 + i}" for i in range(4)] and len(batch["caption"]) == 4
    assert batch["skipped"].item() == 0 and "__stream__" not in batch
    # same length and fps as the source: labels are the JSON's, frame for frame
    import webdataset as wds
    raw = {s["__key__"]: json.loads(s["json"]) for s in wds.WebDataset(dm.urls["val"][0], shardshuffle=False)}
    for i, key in enumerate(batch["key"]):
        ann, n = raw[key], len(raw[key]["objects"])
        assert batch["obj_mask"][i].tolist() == [j < n for j in range(K)]
        np.testing.assert_allclose(batch["centers"][i, :, :n], ann["centers"], atol=1e-5)
        np.testing.assert_allclose(batch["gravity"][i], ann["gravity"], atol=1e-5)
        assert batch["contacts"][i].nonzero().flatten().tolist() == sorted({c["frame"] for c in ann["contacts"]
                                                                              if c["frame"] < T})


def test_broken_samples_are_skipped_counted_and_named(odd_shard, odd_keys):
    dm = VideoDataModule(val_shards=str(odd_shard), **{**SMALL, "batch_size": 4})
    with pytest.warns(SkippedSampleWarning) as record:
        batches = consume(dm, dm.val_dataloader())
    assert keys(batches) == odd_keys["good"]
    messages = " ".join(str(w.message) for w in record)
    for key in odd_keys["broken"]:
        assert re.search(rf"'{key}' from shard {re.escape(str(odd_shard))}", messages), key
    assert batches[-1]["skipped"].item() == 3 and dm.skipped == {"train": 0, "val": 3}
    by_key = {k: i for i, k in enumerate(batches[0]["key"])}
    assert not batches[0]["audio_mask"][by_key["noaudio"]] and not batches[0]["audio"][by_key["noaudio"]].any()
    assert not batches[0]["ann_mask"][by_key["nojson"]] and not batches[0]["centers"][by_key["nojson"]].any()
    assert batches[0]["audio_mask"][by_key["good-0"]] and batches[0]["ann_mask"][by_key["good-0"]]


def test_skipped_counts_from_worker_processes_are_summed(odd_shard, odd_keys, synthetic_shards):
    shards = [str(odd_shard), str(synthetic_shards / "val-000000.tar")]  # one shard per worker
    dm = VideoDataModule(val_shards=shards, num_workers=2, **SMALL)
    batches = consume(dm, dm.val_dataloader())
    assert sorted(keys(batches)) == sorted(odd_keys["good"] + [f"synth-{1_000_000_000 + i}" for i in range(4)])
    assert dm.skipped["val"] == 3 and batches[-1]["skipped"].item() == 3


def test_shard_specs_that_match_nothing_fail_early_naming_the_pattern(tmp_path, synthetic_shards):
    for spec in [str(tmp_path / "train-*.tar"), str(tmp_path / "train-{000000..000003}.tar")]:
        with pytest.raises(FileNotFoundError, match=re.escape(spec)):
            VideoDataModule(train_shards=spec)
    with pytest.raises(FileNotFoundError, match="missing"):  # a brace range with holes
        VideoDataModule(train_shards=str(synthetic_shards / "train-{000000..000002}.tar"))
    with pytest.raises(FileNotFoundError, match="'test'"):
        VideoDataModule(train_shards=str(synthetic_shards), train_split="test")


@pytest.mark.parametrize("bad", [dict(height=0), dict(num_frames=-1), dict(fps=0.0), dict(batch_size=0),
                                 dict(epoch_size=1, batch_size=2), dict(num_workers=-1), dict(win_length=2048)])
def test_bad_sizes_fail_at_construction(synthetic_shards, bad):
    with pytest.raises(ValueError, match="VideoDataModule"):
        VideoDataModule(train_shards=str(synthetic_shards), **bad)


def test_directory_resolves_splits_through_the_manifest(synthetic_shards):
    dm = VideoDataModule(str(synthetic_shards), str(synthetic_shards), **SMALL)
    assert [p.split("/")[-1] for p in dm.urls["train"]] == ["train-000000.tar", "train-000001.tar"]
    assert [p.split("/")[-1] for p in dm.urls["val"]] == ["val-000000.tar"]
    dm.setup("fit")
    assert len(dm.train_dataloader()) == 8 // 2  # epoch = all 8 train samples from the manifest


def test_fixed_seed_gives_a_fixed_stream(synthetic_shards):
    def stream(seed):
        dm = VideoDataModule(str(synthetic_shards), epoch_size=12, seed=seed, **SMALL)
        batches = consume(dm, dm.train_dataloader())
        return keys(batches), torch.stack([b["video"] for b in batches])

    (k0, v0), (k1, v1), (k2, _) = stream(0), stream(0), stream(1)
    assert len(k0) == 12 and k0 == k1 and torch.equal(v0, v1) and k0 != k2


def test_state_dict_round_trip_continues_the_stream(synthetic_shards):
    args = dict(train_shards=str(synthetic_shards), epoch_size=12, seed=3, **SMALL)
    dm = VideoDataModule(**args)
    full = consume(dm, dm.train_dataloader())  # the uninterrupted epoch: 6 batches

    first = VideoDataModule(**args)
    head = consume(first, first.train_dataloader(), n=2)
    state = first.state_dict()
    assert state["samples_seen"] == 4 and state["seed"] == 3
    resumed = VideoDataModule(**{**args, "seed": 99})  # the checkpoint's seed wins
    with pytest.warns(UserWarning, match="seed"):
        resumed.load_state_dict(state)
    tail = consume(resumed, resumed.train_dataloader())
    assert keys(head + tail) == keys(full)
    for a, b in zip(head + tail, full):
        assert torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"])
    # the next epoch starts fresh and differs from the first
    assert len(consume(resumed, resumed.train_dataloader())) == 6


def test_with_workers_each_worker_resumes_its_own_stream(synthetic_shards):
    args = dict(train_shards=str(synthetic_shards), epoch_size=12, seed=1, num_workers=2, **SMALL)
    dm = VideoDataModule(**args)
    full = [tuple(b["key"]) for b in consume(dm, dm.train_dataloader())]  # workers alternate: 0, 1, 0, ...
    first = VideoDataModule(**args)
    head = [tuple(b["key"]) for b in consume(first, first.train_dataloader(), n=3)]
    resumed = VideoDataModule(**args)
    resumed.load_state_dict(first.state_dict())
    tail = [tuple(b["key"]) for b in consume(resumed, resumed.train_dataloader())]
    # the same batches follow in the same order: the DataLoader's worker 0 takes over stream worker 1,
    # whose batch was due next (3 consumed: 0, 1, 0)
    assert head == full[:3] and tail == full[3:]
    assert resumed.state_dict()["train"]["last_worker"] == 1


def test_one_pass_mode_reads_every_sample_once_per_epoch_in_a_new_order(synthetic_shards):
    dm = VideoDataModule(str(synthetic_shards), resampled=False, **SMALL)
    epochs = [keys(consume(dm, dm.train_dataloader())) for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(f"synth-{i}" for i in range(8))
    assert epochs[0] != epochs[1]


class KeyRecorder(L.LightningModule):
    """Records the keys it trains on; the smallest module Lightning will fit."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[str] = []

    def training_step(self, batch, _):
        self.seen += batch["key"]
        self.log("data/skipped", batch["skipped"].float())
        return (self.w - batch["video"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_checkpoints_resume_the_data_stream(synthetic_shards, tmp_path):
    args = dict(train_shards=str(synthetic_shards), epoch_size=8, seed=5, **SMALL)  # 4 batches per epoch
    quiet = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                 num_sanity_val_steps=0, limit_val_batches=0)
    every3 = L.pytorch.callbacks.ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=3, save_top_k=-1)
    full = KeyRecorder()
    L.Trainer(max_steps=9, callbacks=[every3], **quiet).fit(full, datamodule=VideoDataModule(**args))
    assert len(full.seen) == 18

    # a checkpoint written mid-epoch during training (step 3 of a 4-batch epoch)
    rest = KeyRecorder()
    L.Trainer(max_steps=9, enable_checkpointing=False, **quiet).fit(
        rest, datamodule=VideoDataModule(**args), ckpt_path=tmp_path / "step=3.ckpt")
    assert rest.seen == full.seen[6:]

    # a checkpoint saved after fit stopped mid-epoch: Lightning starts a new epoch, the data does not
    part, rest = KeyRecorder(), KeyRecorder()
    trainer = L.Trainer(max_steps=3, enable_checkpointing=False, **quiet)
    trainer.fit(part, datamodule=VideoDataModule(**args))
    trainer.save_checkpoint(tmp_path / "after_fit.ckpt")
    L.Trainer(max_steps=9, enable_checkpointing=False, **quiet).fit(
        rest, datamodule=VideoDataModule(**args), ckpt_path=tmp_path / "after_fit.ckpt")
    assert part.seen + rest.seen == full.seen
