"""Specification of ``convert_folder`` / ``ltx-shards folder``: user videos + captions -> shards."""
import io

import av
import decord
import numpy as np
import pytest
import webdataset as wds

from ltx_train.data.cli import main
from ltx_train.data.folder import convert_folder, load_caption_table, sanitise_key
from ltx_train.media import write_mp4
from ltx_train.data.shard_writer import read_manifest, shard_urls

FPS = 24


def grey_ramp(n: int) -> np.ndarray:
    """(n, 32, 64, 3) frames whose brightness encodes the frame index (4 * i), to check where clips start."""
    return np.repeat((np.arange(n, dtype=np.uint8) * 4)[:, None, None, None], 32 * 64 * 3, 1).reshape(n, 32, 64, 3)


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "videos"
    (d / "sub").mkdir(parents=True)
    write_mp4(d / "a.mp4", grey_ramp(24), FPS, 0.1 * np.sin(np.arange(24000) / 10).astype(np.float32), 24000)
    (d / "a.txt").write_text("a grey ramp with a hum\n")
    write_mp4(d / "sub" / "b clip.mp4", grey_ramp(12), FPS)  # no audio track
    write_mp4(d / "c.mp4", grey_ramp(6), FPS)                 # no caption anywhere
    (d / "notes.mp4").write_bytes(b"this is not a video at all")
    (d / "notes.txt").write_text("a caption does not make it a video")
    click = np.zeros((2, 16000 * 60 // FPS), np.float32)
    click[:, 24000:24080] = 0.8                               # stereo 16 kHz, click at 1.5 s
    write_mp4(d / "long.mp4", grey_ramp(60), FPS, click, 16000)
    (d / "long.txt").write_text("a long ramp with one click")
    return d


def read_split(out, split):
    return {s["__key__"]: s for s in wds.WebDataset(shard_urls(out, split), shardshuffle=False)}


def test_copies_original_bytes_and_reports_skipped_files_by_name(src, tmp_path, capsys):
    out = tmp_path / "shards"
    summary = convert_folder(src, out)
    assert summary["written"] == {"train": 2, "val": 0}
    skipped = {s["file"]: s["reason"] for s in summary["skipped"]}
    assert set(skipped) == {"c.mp4", "notes.mp4", "sub/b clip.mp4"}
    assert skipped["c.mp4"] == "no caption" and skipped["notes.mp4"].startswith("not a readable video")
    printed = capsys.readouterr().out
    assert "notes.mp4" in printed and "c.mp4" in printed and "wrote 2 train + 0 val samples" in printed
    samples = read_split(out, "train")
    assert set(samples) == {"a", "long"}
    assert samples["a"]["mp4"] == (src / "a.mp4").read_bytes()
    assert samples["a"]["txt"].decode() == "a grey ramp with a hum"
    assert "json" not in samples["a"]  # user clips carry no physics annotations
    assert read_manifest(out)["splits"]["train"]["num_samples"] == 2


def test_csv_captions_include_a_video_without_audio(src, tmp_path):
    table = tmp_path / "caps.csv"
    table.write_text('path,caption\nsub/b clip.mp4,"silent ramp, no sound"\nlong.mp4,long from csv\n')
    summary = convert_folder(src, tmp_path / "out", captions=table, verbose=False)
    assert summary["written"]["train"] == 3
    samples = read_split(tmp_path / "out", "train")
    b = samples[sanitise_key("sub/b clip.mp4")]
    assert b["txt"].decode() == "silent ramp, no sound"
    assert samples["long"]["txt"].decode() == "long from csv"  # the table wins over the sidecar
    assert len(decord.VideoReader(io.BytesIO(b["mp4"]))) == 12
    with av.open(io.BytesIO(b["mp4"])) as c:
        assert len(c.streams.audio) == 0


def test_jsonl_captions_match_by_file_name(tmp_path):
    table = tmp_path / "caps.jsonl"
    table.write_text('{"path": "x/y/long.mp4", "caption": "from jsonl"}\n{"file": "a.mp4", "text": "A"}\n')
    assert load_caption_table(table) == {"x/y/long.mp4": "from jsonl", "a.mp4": "A"}


def test_clip_cutting_reencodes_whole_clips_aligned_with_audio(src, tmp_path):
    out = tmp_path / "out"
    summary = convert_folder(src, out, clip_seconds=1.0, verbose=False)
    samples = read_split(out, "train")
    # long.mp4 (60 frames) -> two 1 s clips of 25 frames (0..24, 24..48), tail dropped;
    # a.mp4 (24 frames, not more than one clip) is copied unchanged
    assert set(samples) == {"a", "long_clip000", "long_clip001"} and summary["written"]["train"] == 3
    assert samples["a"]["mp4"] == (src / "a.mp4").read_bytes()
    for k in (0, 1):
        clip = samples[f"long_clip{k:03d}"]
        assert clip["txt"].decode() == "a long ramp with one click"
        vr = decord.VideoReader(io.BytesIO(clip["mp4"]))
        assert len(vr) == FPS + 1 and vr.get_avg_fps() == pytest.approx(FPS)
        assert vr[0].asnumpy().mean() == pytest.approx(4 * FPS * k, abs=3)  # starts at source frame 24 k
        assert vr[FPS].asnumpy().mean() == pytest.approx(4 * FPS * (k + 1), abs=3)  # ends 1 s later
    with av.open(io.BytesIO(samples["long_clip001"]["mp4"])) as c:
        stream = c.streams.audio[0]
        assert stream.rate == 16000 and stream.channels == 2
        audio = np.concatenate([f.to_ndarray() for f in c.decode(stream)], axis=1)
    onset = np.argmax(np.abs(audio[0]) > 0.4) / 16000
    assert onset == pytest.approx(0.5, abs=1 / FPS)  # the click at 1.5 s lands 0.5 s into the second clip


def test_one_second_clips_hold_the_default_training_clip(src, tmp_path):
    """--clip-seconds 1 at 24 fps must give clips the default layout (25 frames, 1 + 8k) can decode."""
    from ltx_train.audio.mel import LogMel, MelConfig
    from ltx_train.data.decode import ClipConfig, decode_sample

    convert_folder(src, tmp_path / "out", clip_seconds=1.0, verbose=False)
    samples = read_split(tmp_path / "out", "train")
    cfg = ClipConfig(height=32, width=32)  # num_frames=25, fps=24: the default data config
    for key in ("long_clip000", "long_clip001"):
        clip = decode_sample(samples[key], cfg, LogMel(MelConfig()), rng=None)
        assert clip["video"].shape == (3, 25, 32, 32) and clip["audio_mask"].item()
        assert clip["audio"].shape == (25000,)
        # the clip's audio is its own span: the click at 1.5 s sits 0.5 s into clip 1 only
        assert (np.abs(clip["audio"].numpy()).max() > 0.2) == (key == "long_clip001")


def test_val_fraction_one_puts_every_video_in_val(src, tmp_path):
    summary = convert_folder(src, tmp_path / "out", val_fraction=1.0, verbose=False)
    assert summary["written"] == {"train": 0, "val": 2} and summary["videos"]["val"] == 2
    with pytest.raises(ValueError, match="val_fraction"):
        convert_folder(src, tmp_path / "bad", val_fraction=1.5, verbose=False)


def test_val_fraction_takes_whole_videos(src, tmp_path):
    table = tmp_path / "caps.csv"
    table.write_text("sub/b clip.mp4,b\n")  # headerless rows; the others use sidecars
    summary = convert_folder(src, tmp_path / "out", captions=table, clip_seconds=1.0, val_fraction=0.34,
                             seed=1, verbose=False)
    assert summary["videos"]["train"] + summary["videos"]["val"] == 3 and summary["videos"]["val"] == 1
    train, val = read_split(tmp_path / "out", "train"), read_split(tmp_path / "out", "val")
    stems = lambda keys: {k.split("_clip")[0] for k in keys}  # noqa: E731
    assert not stems(train) & stems(val)
    assert summary["written"] == {"train": len(train), "val": len(val)}


def test_cli_folder_prints_summary(src, tmp_path, capsys):
    assert main(["folder", "--src", str(src), "--out", str(tmp_path / "o"), "--clip-seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote 3 train + 0 val samples from 2 videos" in out and "skipped 3 files" in out
    assert "skipped notes.mp4: not a readable video" in out
