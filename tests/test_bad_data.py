"""Specifications of bad data handling: every skip has a kind, is counted and named; mostly-bad data
stops the run naming the worst shards; damaged shards are named at setup, with or without a manifest."""
from __future__ import annotations

import logging
import shutil

import lightning as L
import numpy as np
import pytest
import torch
import webdataset as wds

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.data.bad_metrics import BadSampleMetrics
from ltx_train.data.badsamples import WARN_EVERY, WARN_FIRST, BadSamples, TooManyBadSamples, classify
from ltx_train.data.datamodule import VideoDataModule
from ltx_train.data.decode import DECODE_ERRORS, ClipConfig, decode_sample
from ltx_train.data.stream import SkippedSampleWarning

SMALL = dict(num_frames=9, height=32, width=32, batch_size=2, shuffle_buffer=4)


def consume(dm, loader):
    return [dm.on_before_batch_transfer(b, 0) for b in loader]


def write_tar(path, samples):
    with wds.TarWriter(str(path)) as sink:
        for s in samples:
            sink.write(s)
    return path


@pytest.fixture(scope="module")
def mostly_garbage(tmp_path_factory, synthetic_shards):
    """16 train shards without a manifest: one good (4 clips), 15 of 4 samples whose mp4 is noise."""
    root = tmp_path_factory.mktemp("garbage")
    shutil.copy(synthetic_shards / "train-000000.tar", root / "train-000000.tar")
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    for i in range(1, 16):
        write_tar(root / f"train-{i:06d}.tar",
                  [{"__key__": f"junk-{i}-{j}", "mp4": noise, "txt": b"noise"} for j in range(4)])
    return root


def test_mostly_garbage_shards_stop_the_stream_naming_the_worst_shards(mostly_garbage):
    dm = VideoDataModule(train_shards=str(mostly_garbage / "train-*.tar"), epoch_size=40, **SMALL)
    with pytest.warns(SkippedSampleWarning), pytest.raises(TooManyBadSamples) as err:
        consume(dm, dm.train_dataloader())
    msg = str(err.value)
    assert "of the last" in msg and "data.max_bad_fraction=0.1" in msg and "bad_video=" in msg
    named = [f"train-{i:06d}.tar" for i in range(1, 16) if f"train-{i:06d}.tar (" in msg]
    assert len(named) == 5 and "train-000000.tar (" not in msg  # the five worst, never the good one
    assert "read were bad)" in msg


class Recorder(L.LightningModule):
    """The smallest module Lightning fits; counts its steps."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.steps = 0

    def training_step(self, batch, _):
        self.steps += 1
        return (self.w - batch["video"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


QUIET = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
             enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0)


def test_mostly_garbage_stops_a_lightning_fit_early(mostly_garbage):
    module = Recorder()
    dm = VideoDataModule(train_shards=str(mostly_garbage / "train-*.tar"), **SMALL)
    with pytest.warns(SkippedSampleWarning), pytest.raises(TooManyBadSamples, match="worst shards"):
        L.Trainer(max_steps=20, **QUIET).fit(module, datamodule=dm)
    assert module.steps < 20


def test_few_bad_samples_continue_and_are_counted_by_kind(odd_shard, odd_keys, caplog):
    # 3 of 7 bad, read in order: the third batch comes after the whole shard, all three kinds
    dm = VideoDataModule(train_shards=str(odd_shard), epoch_size=6, **{**SMALL, "shuffle_buffer": 0})
    module = Recorder()
    trainer = L.Trainer(max_steps=3, callbacks=[BadSampleMetrics()], **QUIET)
    with pytest.warns(SkippedSampleWarning), caplog.at_level(logging.INFO, "ltx_train.data"):
        trainer.fit(module, datamodule=dm)
    assert module.steps == 3
    kinds = dm.skipped_by_kind["train"]
    assert set(kinds) == {"bad_video", "bad_json", "missing_caption"} and sum(kinds.values()) == dm.skipped["train"]
    for kind, n in kinds.items():
        assert trainer.callback_metrics[f"data/skipped_{kind}"].item() == n
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train data: skipped")]
    assert summary and f"{odd_shard} ({sum(kinds.values())} bad)" in summary[0] and "bad_json=" in summary[0]
    assert dm.state_dict()["bad"]["train"]["kinds"] == kinds  # checkpointed with the stream position


def test_each_kind_of_broken_sample_is_classified(make_sample, ramp_clip):
    frames, ann, audio = ramp_clip(num_frames=12)
    good = make_sample("k", frames, 24.0, audio, ann=ann)
    cases = {
        "missing_video": {k: v for k, v in good.items() if k != "mp4"},
        "missing_caption": {k: v for k, v in good.items() if k != "txt"},
        "bad_text": {**good, "txt": b"\xff\xfe caption"},
        "bad_json": {**good, "json": b'{"gravity": '},
        "bad_annotation": {**good, "json": b'{"gravity": [0, 1, 2], "light": [0, 0, 1]}'},
        "bad_video": {**good, "mp4": good["mp4"][: len(good["mp4"]) // 3]},
        "too_short": make_sample("short", frames[:4], 24.0, audio, ann=ann),
    }
    cfg, mel = ClipConfig(num_frames=9, height=32, width=32), LogMel(MelConfig())
    decode_sample(good, cfg, mel, None)  # the base sample is fine: each case breaks one thing
    for kind, sample in cases.items():
        with pytest.raises(DECODE_ERRORS) as err:
            decode_sample(sample, cfg, mel, None)
        assert classify(err.value) == kind, (kind, err.value)


def test_window_fraction_and_minimum_count():
    few = BadSamples("train", max_bad_fraction=0.1, window=200, min_samples=50)
    with pytest.warns(SkippedSampleWarning):
        few.bad("bad_video", "a.tar", "sample 'x'", "why")  # 1 of the first 3: below the minimum count
        few.good("a.tar"), few.good("a.tar")
        for i in range(1000):  # then 5% bad, spread out: never more than 10% of a window
            few.bad("bad_json", "b.tar", f"sample {i}", "why") if i % 20 == 0 else few.good("a.tar")
    assert few.kinds == {"bad_video": 1, "bad_json": 50}

    many = BadSamples("train", max_bad_fraction=0.1, window=200, min_samples=50)
    for _ in range(300):
        many.good("a.tar")
    with pytest.warns(SkippedSampleWarning), pytest.raises(TooManyBadSamples) as err:
        for i in range(100):  # a burst: the window forgets the good samples as it slides
            many.bad("bad_video", "c.tar", f"sample {i}", "why")
    assert "21 of the last 200" in str(err.value) and "c.tar (21 of 21 read were bad)" in str(err.value)
    assert many.take() == {"kinds": {"bad_video": 21}, "shards": {"c.tar": 21}} and many.take()["kinds"] == {}


def test_repeated_skips_are_reported_with_running_counts_not_collapsed():
    bad = BadSamples("val", max_bad_fraction=1.0)
    with pytest.warns(SkippedSampleWarning) as record:
        for i in range(2 * WARN_EVERY + 1):
            bad.bad("bad_video", "a.tar", f"val sample 'k{i}'", "DECORDError: broken")
    messages = [str(w.message) for w in record]
    assert len(messages) == WARN_FIRST + 2
    assert f"reported every {WARN_EVERY}th" in messages[WARN_FIRST - 1]
    assert messages[-1].startswith(f"{2 * WARN_EVERY} val samples skipped as bad_video so far")


@pytest.fixture
def damaged_dir(tmp_path, synthetic_shards):
    """train-000000 good, -000001 truncated, -000002 not a tar; no manifest."""
    good = (synthetic_shards / "train-000000.tar").read_bytes()
    (tmp_path / "train-000000.tar").write_bytes(good)
    (tmp_path / "train-000001.tar").write_bytes(good[: len(good) * 2 // 3])
    (tmp_path / "train-000002.tar").write_bytes(b"<html>404 not found</html>" * 40)
    return tmp_path


def test_truncated_and_non_tar_shards_are_named_at_setup_without_a_manifest(damaged_dir):
    dm = VideoDataModule(train_shards=str(damaged_dir), **SMALL)
    with pytest.raises(TooManyBadSamples) as err:
        dm.setup("fit")
    msg = str(err.value)
    assert "2 of 3 train shards cannot be read" in msg
    assert f"{damaged_dir}/train-000001.tar: truncated tar" in msg
    assert f"{damaged_dir}/train-000002.tar: not a tar file" in msg

    # tolerated: named in a warning, the non-tar left out, the truncated one read (and counted) to the damage
    dm = VideoDataModule(train_shards=str(damaged_dir), max_bad_fraction=0.7, **SMALL)
    with pytest.warns(SkippedSampleWarning, match="train-000002.tar: not a tar file"):
        dm.setup("fit")
    assert [u.split("/")[-1] for u in dm.urls["train"]] == ["train-000000.tar", "train-000001.tar"]
    assert len(dm.train_dataloader()) == (4 + 3) // 2  # the truncated shard counts the 3 keys whose headers survive


def test_damaged_and_missing_shards_are_named_at_setup_with_a_manifest(synthetic_shards, tmp_path):
    shutil.copytree(synthetic_shards, tmp_path / "ds")
    shard = tmp_path / "ds" / "train-000001.tar"
    shard.write_bytes(shard.read_bytes()[:5000])
    dm = VideoDataModule(train_shards=str(tmp_path / "ds"), **SMALL)  # counts come from the manifest
    with pytest.raises(TooManyBadSamples, match=f"{shard}: truncated tar"):
        dm.setup("fit")
    dm = VideoDataModule(train_shards=str(tmp_path / "ds"), **SMALL)
    shard.unlink()  # gone between building the config and fitting
    with pytest.raises(TooManyBadSamples, match=f"{shard}: missing file"):
        dm.setup("fit")
