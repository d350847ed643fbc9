"""Where media comes from: a file path or the bytes of a file (a WebDataset member), and the one
error type every reader raises for input it cannot read."""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import Union

import av
import decord

Source = Union[str, Path, bytes]


class MediaError(ValueError):
    """A file (or in-memory file) that cannot be read as the media asked for; the message names it."""


def describe(src: Source) -> str:
    """How an error names the source: its path, or the size of in-memory bytes."""
    return f"<{len(src)} bytes of media>" if isinstance(src, (bytes, bytearray)) else str(src)


def _check(src: Source) -> None:
    if isinstance(src, (bytes, bytearray)):
        if not src:
            raise MediaError("empty media bytes")
    elif not Path(src).is_file():
        raise MediaError(f"{src}: no such file")


@contextmanager
def reading(src: Source, what: str):
    """Turn the decoders' own errors into a MediaError naming the source (what: "video", "audio", ...)."""
    try:
        yield
    except MediaError:
        raise
    except (decord.DECORDError, av.FFmpegError, EOFError, StopIteration) as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise MediaError(f"{describe(src)}: cannot read {what}: {first}") from e


def open_av(src: Source) -> av.container.InputContainer:
    """A PyAV input container (use as a context manager)."""
    _check(src)
    return av.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else str(src))


def open_decord(src: Source, num_threads: int = 1) -> decord.VideoReader:
    """A decord reader; ``num_threads`` 0 lets decord choose (DataLoader workers already parallelise)."""
    _check(src)
    try:
        return decord.VideoReader(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else str(src),
                                  num_threads=num_threads)
    except RuntimeError as e:  # decord reports a file it cannot open as a bare RuntimeError
        raise MediaError(f"{describe(src)}: cannot open as video ({e})") from e
