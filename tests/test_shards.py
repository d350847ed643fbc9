"""Specification of the shard writer: WebDataset round trip, manifest, split seeds, atomic writes, CLI."""
import io
import json

import decord
import numpy as np
import pytest
import webdataset as wds

from ltx_train.data.cli import main
from ltx_train.data.shard_writer import read_manifest, shard_urls, write_shards, write_synthetic_shards
from ltx_train.data.synth import SynthConfig, render_clip

TINY = SynthConfig(width=32, height=32, num_frames=9, fps=24.0)


def read_split(folder, split):
    return list(wds.WebDataset(shard_urls(folder, split), shardshuffle=False))


def test_synthetic_shards_round_trip_through_webdataset(tmp_path):
    manifest = write_synthetic_shards(tmp_path, n_train=5, n_val=2, cfg=TINY, shard_size=2, seed=3)
    assert manifest == read_manifest(tmp_path)
    train = manifest["splits"]["train"]
    assert [s["file"] for s in train["shards"]] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert [s["num_samples"] for s in train["shards"]] == [2, 2, 1] and train["num_samples"] == 5
    assert manifest["splits"]["val"]["num_samples"] == 2
    assert manifest["generator"]["config"]["width"] == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json", "train-000000.tar", "train-000001.tar", "train-000002.tar", "val-000000.tar"]

    samples = read_split(tmp_path, "train")
    assert [s["__key__"] for s in samples] == [f"synth-{i}" for i in range(3, 8)]
    first = samples[0]
    assert {"mp4", "txt", "json"} <= set(first)
    clip = render_clip(3, TINY)
    assert json.loads(first["json"]) == clip.annotations
    assert first["txt"].decode("utf-8") == clip.caption
    vr = decord.VideoReader(io.BytesIO(first["mp4"]))
    frames = vr.get_batch(list(range(len(vr)))).asnumpy()
    assert frames.shape == (9, 32, 32, 3)
    assert np.abs(frames.astype(int) - clip.frames.astype(int)).mean() < 6  # H.264 at crf 18


def test_val_seeds_are_disjoint_from_train(tmp_path):
    write_synthetic_shards(tmp_path, n_train=3, n_val=3, cfg=TINY, shard_size=8)
    train = {s["__key__"] for s in read_split(tmp_path, "train")}
    val = {s["__key__"] for s in read_split(tmp_path, "val")}
    assert len(train) == 3 and len(val) == 3 and not train & val


def test_parallel_workers_write_the_same_samples(tmp_path):
    write_synthetic_shards(tmp_path / "one", 4, 1, TINY, shard_size=3, workers=1)
    write_synthetic_shards(tmp_path / "two", 4, 1, TINY, shard_size=3, workers=2)
    for split in ("train", "val"):
        a, b = read_split(tmp_path / "one", split), read_split(tmp_path / "two", split)
        assert [s["__key__"] for s in a] == [s["__key__"] for s in b]
        assert all(x["json"] == y["json"] and x["txt"] == y["txt"] for x, y in zip(a, b))


def test_interrupted_write_leaves_no_partial_shard(tmp_path):
    def samples():
        for i in range(5):
            yield {"__key__": f"k{i}", "txt": b"x"}
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        write_shards(tmp_path, "train", samples(), shard_size=2)
    # the two complete shards are kept under their final names; the third never appears, nor its temp file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-000000.tar", "train-000001.tar"]


def test_rewriting_a_smaller_dataset_removes_stale_shards(tmp_path):
    write_synthetic_shards(tmp_path, 4, 0, TINY, shard_size=1)
    write_synthetic_shards(tmp_path, 2, 0, TINY, shard_size=1)
    assert sorted(p.name for p in tmp_path.glob("train-*.tar")) == ["train-000000.tar", "train-000001.tar"]


def test_cli_synth_writes_requested_counts(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--train", "2", "--val", "1", "--size", "32", "--frames", "9",
                 "--fps", "24", "--seed", "0", "--shard-size", "64", "--workers", "1"]) == 0
    manifest = read_manifest(tmp_path)
    assert manifest["splits"]["train"]["num_samples"] == 2 and manifest["splits"]["val"]["num_samples"] == 1
    assert "wrote" in capsys.readouterr().out
