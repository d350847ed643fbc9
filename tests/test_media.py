"""Specification of ``ltx_train.media``: write -> read round trips, audio on the video clock, probe,
bytes == path, decord's bad widths, the first-frame reader, and what counts as no audio."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from ltx_train.media import MediaError, probe, read_audio, read_clip, read_first_frame, read_video, write_mp4

FPS, SR = 24.0, 24000


def ramp(n: int, h: int = 32, w: int = 48) -> np.ndarray:
    """(n, h, w, 3) frames whose grey level is 8 * frame index."""
    return np.broadcast_to((np.arange(n) * 8 % 248).astype(np.uint8)[:, None, None, None], (n, h, w, 3)).copy()


def noise_bursts(num_samples: int, times_s, sr: int = SR) -> np.ndarray:
    """Silence with 5 ms bursts of seeded white noise at ``times_s``: sharp onsets, broadband for AAC."""
    x = np.zeros(num_samples, np.float32)
    rng = np.random.default_rng(0)
    for t in times_s:
        i = int(round(t * sr))
        x[i:i + sr // 200] = 0.5 * rng.standard_normal(len(x[i:i + sr // 200]))
    return x


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(path, frames, audio): 25 grey-ramp frames with noise bursts at 0.2 s and 0.7 s."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    frames, audio = ramp(25), noise_bursts(25000, [0.2, 0.7])
    write_mp4(path, frames, FPS, audio, SR)
    return path, frames, audio


def test_write_then_read_frames_and_probe(clip):
    path, frames, _ = clip
    info = probe(path)
    assert (info.fps, info.num_frames, info.width, info.height) == (FPS, 25, 48, 32)
    assert info.has_audio and (info.sample_rate, info.channels) == (SR, 1)
    got = read_video(path)
    assert got.shape == (25, 32, 48, 3) and got.dtype == np.uint8
    np.testing.assert_allclose(got.mean(axis=(1, 2, 3)), frames.mean(axis=(1, 2, 3)), atol=2)
    picked = read_video(path, [7, 3, 3])  # any order, repeats allowed
    np.testing.assert_array_equal(picked, got[[7, 3, 3]])
    frames_c, idx, fps = read_clip(path, lambda n, f: range(n - 5, n))
    assert idx.tolist() == [20, 21, 22, 23, 24] and fps == FPS
    np.testing.assert_array_equal(frames_c, got[20:])
    assert not list(path.parent.glob("*.tmp.mp4"))  # the temporary name was renamed away


def test_audio_is_on_the_video_clock_at_lag_zero(clip):
    path, _, audio = clip
    got = read_audio(path, 0.0, 25 / FPS)  # the clip's video span, T / fps
    assert got.shape == (1, 25000) and got.dtype == np.float32
    lags = np.arange(-200, 201)
    xcorr = [np.dot(got[0, 300 + k:24000 + k], audio[300:24000]) for k in lags]
    assert lags[int(np.argmax(xcorr))] == 0
    # a window is the same samples as the full read; a resampled window keeps the burst times
    np.testing.assert_array_equal(read_audio(path, 0.5, 0.25), read_audio(path)[:, 12000:18000])
    low = read_audio(path, 0.5, 0.5, sample_rate=16000)
    assert low.shape == (1, 8000)
    assert int(np.argmax(np.abs(low[0]) > 0.1)) == pytest.approx(0.2 * 16000, abs=16)  # burst at 0.7 s
    # past the end of the track: zeros, still the asked length
    tail = read_audio(path, 1.0, 0.5)
    assert tail.shape == (1, 12000) and not tail[:, 1500:].any()


def test_bytes_and_path_read_the_same(clip):
    path, _, _ = clip
    data = path.read_bytes()
    assert probe(data) == probe(path)
    np.testing.assert_array_equal(read_video(data, [0, 12, 24]), read_video(path, [0, 12, 24]))
    np.testing.assert_array_equal(read_audio(data, 0.1, 0.5, mono=True), read_audio(path, 0.1, 0.5, mono=True))


@pytest.mark.parametrize("width", [24, 48])
def test_widths_decord_gets_wrong_are_read_correctly(tmp_path, width):
    frames = np.random.default_rng(width).integers(0, 256, (6, 32, width, 3), dtype=np.uint8)
    path = tmp_path / f"w{width}.mp4"
    write_mp4(path, frames, FPS)
    with av.open(str(path)) as c:  # reference: PyAV's own decode
        ref = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    got = read_video(path.read_bytes(), [5, 0, 2])
    assert got.shape == (3, 32, width, 3)
    np.testing.assert_array_equal(got, ref[[5, 0, 2]])
    assert probe(path).width == width


def test_stereo_audio_keeps_channels_or_mixes_to_mono(tmp_path):
    left, right = noise_bursts(24000, [0.25]), noise_bursts(24000, [0.75])
    path = tmp_path / "stereo.mp4"
    write_mp4(path, ramp(24), FPS, np.stack([left, right]), SR)
    info = probe(path)
    assert info.channels == 2
    both = read_audio(path, 0.0, 1.0)
    assert both.shape == (2, 24000)
    assert np.abs(both[0, 5800:6400]).max() > 0.2 and np.abs(both[1, 5800:6400]).max() < 0.05
    mono = read_audio(path, 0.0, 1.0, mono=True)
    assert mono.shape == (1, 24000) and np.abs(mono[0, 17800:18400]).max() > 0.1


def test_empty_audio_track_counts_as_no_audio(tmp_path, empty_audio_track):
    empty = empty_audio_track(tmp_path / "empty_track.mkv")
    with av.open(str(empty)) as c:
        assert len(c.streams.audio) == 1  # the stream is there...
    info = probe(empty)
    assert not info.has_audio and (info.sample_rate, info.channels) == (0, 0)  # ...but holds nothing
    assert read_audio(empty, 0.0, 1.0) is None
    padding = tmp_path / "padding.mp4"  # 10 zero samples: the encoder emits one AAC frame of zeros
    write_mp4(padding, ramp(25), FPS, np.zeros(10, np.float32), SR)
    assert not probe(padding).has_audio and read_audio(padding, 0.0, 1.0) is None
    zeros = tmp_path / "zeros.mp4"  # a whole second of digital zeros is silence, as a quiet cut clip is
    write_mp4(zeros, ramp(25), FPS, np.zeros(24000, np.float32), SR)
    assert probe(zeros).has_audio and not read_audio(zeros, 0.0, 1.0).any()
    short = tmp_path / "short.mp4"  # a short track with sound is audio, zero-padded to the span asked
    write_mp4(short, ramp(25), FPS, noise_bursts(10, [0.0]), SR)
    got = read_audio(short, 0.0, 1.0)
    assert probe(short).has_audio and got.shape == (1, 24000) and got.any() and not got[:, 2048:].any()
    silent = tmp_path / "silent.mp4"
    write_mp4(silent, ramp(25), FPS)
    assert not probe(silent).has_audio and read_audio(silent) is None


def test_first_frame_of_video_and_image_is_resized_and_centre_cropped(tmp_path):
    # 32 x 96 frame: left third red, middle green, right third blue; a 32 x 32 crop keeps the middle
    frame = np.zeros((32, 96, 3), np.uint8)
    frame[:, :32, 0], frame[:, 32:64, 1], frame[:, 64:, 2] = 255, 255, 255
    video = tmp_path / "v.mp4"
    write_mp4(video, np.stack([frame, np.zeros_like(frame)]), FPS)
    image = tmp_path / "f.png"
    with av.open(str(image), "w") as c:  # a PNG written by PyAV's image muxer
        s = c.add_stream("png")
        s.width, s.height, s.pix_fmt = 96, 32, "rgb24"
        for p in [*s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")), *s.encode()]:
            c.mux(p)
    for src in (video, image):
        x = read_first_frame(src, 16, 16)  # scale 0.5 -> 16 x 48, crop columns 16..32: the green third
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1
        mean = x[:, :, 3:13].mean(dim=(1, 2))
        assert mean[1] > 0.9 and mean[0] < -0.9 and mean[2] < -0.9, (src, mean)


def test_unreadable_input_is_a_media_error_naming_the_file(tmp_path):
    with pytest.raises(MediaError, match="nowhere.png: no such file"):
        read_first_frame(tmp_path / "nowhere.png", 16, 16)
    garbage = tmp_path / "notes.mp4"
    garbage.write_bytes(b"this is not a video at all")
    for fn in (probe, read_video, read_audio, lambda p: read_first_frame(p, 8, 8)):
        with pytest.raises(MediaError, match="notes.mp4"):
            fn(garbage)
    with pytest.raises(MediaError, match="bytes of media"):
        read_video(b"not a video")
    with pytest.raises(MediaError, match="frame 30 asked for, the video has 6 frames"):
        write_mp4(tmp_path / "six.mp4", ramp(6), FPS)
        read_video(tmp_path / "six.mp4", [0, 30])
    with pytest.raises(ValueError, match="bad.mp4: frames must be"):
        write_mp4(tmp_path / "bad.mp4", np.zeros((2, 8, 8), np.uint8), FPS)
