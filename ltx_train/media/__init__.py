"""The one place that opens media: mp4 (or any container decord/PyAV read) in, H.264 + AAC mp4 out.

A source is a file path or the bytes of a file (a WebDataset ``mp4`` member); both give the same.

    probe(src) -> MediaInfo(fps, num_frames, width, height, has_audio, sample_rate, channels)
    read_video(src, frame_indices=None) -> frames (T, H, W, 3) uint8          decord (PyAV fallback)
    read_clip(src, pick) -> (frames, source indices (T,), fps)                 one open, indices chosen from (n, fps)
    read_audio(src, start_s, duration_s, sample_rate, mono) -> (C, S) float32 | None   PyAV, video clock
    read_first_frame(path, height, width) -> (3, height, width) float in [-1, 1]     image or video
    write_mp4(path, frames, fps, audio, sample_rate, crf)                       temp file + rename

Unreadable input raises ``MediaError`` (a ValueError) naming the file.
"""
from ltx_train.media.audio import read_audio
from ltx_train.media.image import read_first_frame
from ltx_train.media.probe import MediaInfo, probe
from ltx_train.media.source import MediaError, Source
from ltx_train.media.video import read_clip, read_video
from ltx_train.media.write import write_mp4

__all__ = ["MediaError", "MediaInfo", "Source", "probe", "read_audio", "read_clip", "read_first_frame",
           "read_video", "write_mp4"]
