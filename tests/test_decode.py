"""Specifications of single-sample decoding: timing, audio span, labels, crops, broken samples."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.data.decode import DECODE_ERRORS, ClipConfig, SampleError, clip_offsets, decode_sample

MEL = LogMel(MelConfig())


def grey_levels(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T,) mean grey level in 0..255."""
    return ((video.mean(dim=(0, 2, 3)) + 1) * 127.5).numpy()


def test_clip_offsets_pick_the_nearest_source_frame():
    assert clip_offsets(5, 24.0, 24.0).tolist() == [0, 1, 2, 3, 4]
    assert clip_offsets(5, 24.0, 48.0).tolist() == [0, 2, 4, 6, 8]
    assert clip_offsets(5, 24.0, 30.0).tolist() == [0, 1, 3, 4, 5]  # 0, 1.25, 2.5, 3.75, 5


def test_half_fps_clip_shows_every_other_source_frame_with_its_labels(ramp_clip, make_sample):
    frames, ann, _ = ramp_clip(num_frames=50, fps=48.0)
    sample = make_sample("ramp48", frames, 48.0, ann=ann)
    cfg = ClipConfig(num_frames=25, fps=24.0, height=32, width=32)
    for rng in [None] + [np.random.default_rng(s) for s in range(4)]:
        clip = decode_sample(sample, cfg, MEL, rng)
        shown = np.round(grey_levels(clip["video"]) / 4).astype(int)  # source index of each clip frame
        s0 = shown[0]
        assert s0 in (0, 1) and (rng is not None or s0 == 0)  # val: centred start of the 2 possible
        assert shown.tolist() == [s0 + 2 * j for j in range(25)]
        # labels are read at the very source frames shown (centre x = source index / 49)
        np.testing.assert_allclose(clip["centers"][:, 0, 0].numpy(), shown / 49, atol=1e-6)
        assert clip["fps"].item() == 24.0 and clip["obj_mask"].tolist() == [True, False, False]


def _click_sample(make_sample, clicks_s, contacts_s):
    sr, fps = 24000, 24.0
    audio = np.zeros(2 * sr, np.float32)
    for t in clicks_s:
        audio[int(t * sr):int(t * sr) + 12] = 0.9
    frames = np.full((48, 32, 32, 3), 128, np.uint8)
    ann = {"fps": fps, "gravity": [0.0, 1.0], "light": [0.5, 0.5, 1.0], "objects": [{}],
           "centers": [[[0.5, 0.5]]] * 48, "velocities": [[[0.0, 0.0]]] * 48,
           "contacts": [{"frame": round(t * fps), "time": t} for t in contacts_s]}
    return make_sample("clicks", frames, fps, audio, sr, ann=ann)


def test_audio_is_cut_to_the_clip_time_span_and_resampled(make_sample):
    sample = _click_sample(make_sample, clicks_s=[0.25, 1.0], contacts_s=[0.25, 1.0])
    cfg = ClipConfig(num_frames=12, fps=24.0, height=32, width=32, sample_rate=16000)
    mel = LogMel(MelConfig(sample_rate=16000, n_fft=512, hop_length=160, win_length=512))
    clip = decode_sample(sample, cfg, mel, rng=None)  # centred: source frames 18..29, t0 = 0.75 s
    audio = clip["audio"].numpy()
    assert audio.shape == (12 * 16000 // 24,) and clip["audio_mask"].item()
    assert clip["mel"].shape == (64, audio.shape[0] // 160)
    # the click at 1.0 s sits 0.25 s into the clip (within 1 ms); the one at 0.25 s is before t0
    assert abs(int(np.argmax(np.abs(audio))) - 4000) <= 16
    assert np.abs(audio[:3900]).max() < 0.05
    # contacts use the same clock: 1.0 s -> clip frame round(0.25 * 24) = 6; 0.25 s is outside
    assert clip["contacts"].nonzero().flatten().tolist() == [6]


def test_clip_without_audio_track_has_zero_audio_and_mask_false(ramp_clip, make_sample):
    frames, ann, _ = ramp_clip()
    clip = decode_sample(make_sample("silent", frames, 24.0, None, ann=ann), ClipConfig(height=32, width=32), MEL, None)
    assert not clip["audio_mask"].item()
    assert clip["audio"].shape == (25000,) and not clip["audio"].any()
    torch.testing.assert_close(clip["mel"], MEL(torch.zeros(25000)))  # log-mel of silence, per the contract
    assert clip["ann_mask"].item()


def test_empty_audio_track_has_mask_false(ramp_clip, make_sample, empty_audio_track, tmp_path):
    frames, ann, _ = ramp_clip()
    cfg = ClipConfig(height=32, width=32)
    empty = {"__key__": "empty", "mp4": empty_audio_track(tmp_path / "e.mkv").read_bytes(), "txt": b"black"}
    padding = make_sample("padding", frames, 24.0, np.zeros(10, np.float32), ann=ann)  # one AAC frame of zeros
    for sample in (empty, padding):
        clip = decode_sample(sample, cfg, MEL, None)
        assert not clip["audio_mask"].item(), sample["__key__"]
        assert clip["audio"].shape == (25000,) and not clip["audio"].any()


def test_sample_without_json_has_ann_mask_false_and_zero_labels(ramp_clip, make_sample):
    frames, _, audio = ramp_clip()
    clip = decode_sample(make_sample("nolabels", frames, 24.0, audio), ClipConfig(height=32, width=32), MEL, None)
    assert not clip["ann_mask"].item() and clip["audio_mask"].item()
    for name in ("gravity", "light", "centers", "velocities", "obj_mask", "contacts"):
        assert not clip[name].any(), name
    assert clip["centers"].shape == (25, 3, 2) and clip["obj_mask"].dtype == torch.bool


def test_random_crop_moves_labels_with_the_pixels(make_sample):
    # 96x64 source, white square centred at pixel (60, 20); 32x32 output: scaled to 48x32, crop x in [0, 16]
    frames = np.zeros((25, 64, 96, 3), np.uint8)
    frames[:, 16:24, 56:64] = 255
    ann = {"fps": 24.0, "gravity": [0.0, 1.0], "light": [0.625, 0.3125, 1.0], "objects": [{}],
           "centers": [[[60 / 96, 20 / 64]]] * 25, "velocities": [[[1.0, 1.0]]] * 25, "contacts": []}
    sample = make_sample("square", frames, 24.0, ann=ann)
    cfg = ClipConfig(height=32, width=32)
    lefts = set()
    for seed in range(6):
        clip = decode_sample(sample, cfg, MEL, np.random.default_rng(seed))
        img = clip["video"][:, 0].mean(0)  # (H, W)
        ys, xs = torch.nonzero(img > 0, as_tuple=True)
        w = (img[ys, xs] + 1)
        seen = torch.stack([((xs + 0.5) * w).sum() / w.sum() / 32, ((ys + 0.5) * w).sum() / w.sum() / 32])
        torch.testing.assert_close(clip["centers"][0, 0], seen, atol=1 / 32, rtol=0)
        torch.testing.assert_close(clip["light"][:2], clip["centers"][0, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(clip["velocities"][0, 0], torch.tensor([1.5, 1.0]))  # 48 px over 32 px wide
        torch.testing.assert_close(clip["gravity"], torch.tensor([0.0, 1.0]))
        lefts.add(round(float(clip["centers"][0, 0, 0]) * 32))
    assert len(lefts) > 1  # the crop really moves


def test_video_shorter_than_the_clip_is_a_sample_error(ramp_clip, make_sample):
    frames, ann, _ = ramp_clip(num_frames=10)
    with pytest.raises(SampleError, match="needs 25"):
        decode_sample(make_sample("short", frames, 24.0, ann=ann), ClipConfig(height=32, width=32), MEL, None)


def test_broken_samples_raise_decode_errors(ramp_clip, make_sample):
    frames, ann, audio = ramp_clip()
    good = make_sample("good", frames, 24.0, audio, ann=ann)
    cfg = ClipConfig(height=32, width=32)
    broken = {"truncated mp4": {**good, "mp4": good["mp4"][:2000]},
              "invalid json": {**good, "json": b"{not json"},
              "json of wrong shape": {**good, "json": b'{"centers": 3, "objects": [1]}'},
              "labels shorter than the video": {**good, "json": json.dumps(
                  {**ann, "centers": ann["centers"][:10], "velocities": ann["velocities"][:10]}).encode()},
              "no caption": {k: v for k, v in good.items() if k != "txt"},
              "no video": {k: v for k, v in good.items() if k != "mp4"}}
    for what, sample in broken.items():
        with pytest.raises(DECODE_ERRORS):
            decode_sample(sample, cfg, MEL, None)
            pytest.fail(f"{what} decoded")
