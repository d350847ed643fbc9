"""Convert a user's folder of videos with captions into WebDataset shards (no annotations).

Captions come from a CSV/JSONL table of (path, caption) or from a sidecar ``<video stem>.txt``.
Without ``clip_seconds`` the original file bytes are stored as ``<key>.mp4`` (decoders probe the
container, so e.g. an mkv stays readable); with it, each video longer than one clip is cut into
whole clips of ``round(clip_seconds * fps) + 1`` frames (see ``clip_frames``) and re-encoded with
``write_mp4`` (audio kept at its own rate, mono or stereo). Files that cannot be decoded or have no
caption are skipped and reported by name. All reading goes through ``ltx_train.media``.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ltx_train.data.shard_writer import MANIFEST, mp4_bytes, write_json_atomic, write_shards
from ltx_train.media import probe, read_audio, read_video

SIDECAR_EXTS = {".txt", ".csv", ".jsonl", ".json"}   # caption/metadata files, never videos
PATH_COLUMNS = ("path", "file", "filename", "video")
CAPTION_COLUMNS = ("caption", "text", "prompt")


@dataclass
class Video:
    rel: str            # posix path relative to the source folder
    path: Path
    key: str
    caption: str
    fps: float
    num_frames: int
    has_audio: bool     # a non-empty, not all-zero track (media.probe); otherwise the clips get none
    sample_rate: int


def load_caption_table(path: str | Path) -> dict[str, str]:
    """CSV (header with path/caption columns, or headerless ``path,caption`` rows) or JSONL -> {path: caption}."""
    path = Path(path)
    table: dict[str, str] = {}
    if path.suffix.lower() == ".jsonl":
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                p = next(row[c] for c in PATH_COLUMNS if c in row)
                table[str(p)] = str(next(row[c] for c in CAPTION_COLUMNS if c in row))
        return table
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if rows and {c.strip().lower() for c in rows[0]} & set(PATH_COLUMNS) and \
            {c.strip().lower() for c in rows[0]} & set(CAPTION_COLUMNS):
        header = [c.strip().lower() for c in rows[0]]
        pi = next(header.index(c) for c in PATH_COLUMNS if c in header)
        ci = next(header.index(c) for c in CAPTION_COLUMNS if c in header)
        rows = [[r[pi], r[ci]] for r in rows[1:] if len(r) > max(pi, ci)]
    for r in rows:
        if len(r) >= 2:
            table[r[0].strip()] = ",".join(r[1:]).strip()  # an unquoted caption may contain commas
    return table


class CaptionLookup:
    """Finds a video's caption: table entry by relative path, absolute path or unique file name; else sidecar."""

    def __init__(self, src: Path, table: dict[str, str] | None):
        self.src, self.by_path, by_name = src.resolve(), {}, {}
        for p, cap in (table or {}).items():
            q = Path(p)
            full = q.resolve() if q.is_absolute() else (self.src / q).resolve()
            self.by_path[full] = cap
            by_name.setdefault(q.name, []).append(cap)
        self.by_name = {k: v[0] for k, v in by_name.items() if len(v) == 1}

    def __call__(self, path: Path) -> str | None:
        cap = self.by_path.get(path.resolve()) or self.by_name.get(path.name)
        sidecar = path.with_suffix(".txt")
        if cap is None and sidecar.is_file():
            cap = sidecar.read_text(encoding="utf-8")
        return cap.strip() if cap and cap.strip() else None


def sanitise_key(rel: str) -> str:
    """'clips/a b.v1.mp4' -> 'clips_a_b_v1': WebDataset splits member names at the first dot."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(Path(rel).with_suffix(""))).strip("_") or "video"


def clip_frames(clip_seconds: float, fps: float) -> int:
    """Frames of one cut clip: ``round(clip_seconds * fps) + 1``, so its first and last frames are
    ``clip_seconds`` apart. The training layout counts a clip that way (1 + 8k frames: 1 s at 24 fps is
    25 frames, and the clip then covers 25 / 24 s of audio), so a clip of ``--clip-seconds 1`` holds
    the default 25-frame clip; ``round(clip_seconds * fps)`` frames would be one too few."""
    return int(round(clip_seconds * fps)) + 1


def cut_clips(video: Video, clip_seconds: float) -> Iterator[dict]:
    """Samples of ``clip_frames`` frames each, re-encoded; the tail that does not fill a clip is dropped.

    Clip k starts at source frame ``k * round(clip_seconds * fps)``: consecutive clips share their
    boundary frame (clip k ends where clip k + 1 starts), as consecutive clips of the same length
    cut from one timeline do. Its audio is the video span [t0, t0 + frames / fps) of the source track.
    """
    stride, n = int(round(clip_seconds * video.fps)), clip_frames(clip_seconds, video.fps)
    audio = read_audio(video.path) if video.has_audio else None  # whole track, native rate and channels
    sr = video.sample_rate if audio is not None else 24000
    for k, first in enumerate(range(0, video.num_frames - n + 1, stride)):
        frames = read_video(video.path, range(first, first + n))
        frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # yuv420p needs even sizes
        clip_audio = None
        if audio is not None:
            a0, count = int(round(first / video.fps * sr)), int(round(n / video.fps * sr))
            clip_audio = audio[:, a0:a0 + count]
            if clip_audio.shape[1] < count:  # audio track shorter than the video: pad with silence
                clip_audio = np.pad(clip_audio, ((0, 0), (0, count - clip_audio.shape[1])))
        yield {"__key__": f"{video.key}_clip{k:03d}",
               "mp4": mp4_bytes(frames, video.fps, clip_audio, sr),
               "txt": video.caption.encode("utf-8")}


def _samples(videos: list[Video], clip_seconds: float | None, skipped: list[dict], counts: dict) -> Iterator[dict]:
    for v in videos:
        if clip_seconds is None or v.num_frames <= clip_frames(clip_seconds, v.fps):  # one clip or less: kept whole
            counts["videos"] += 1
            yield {"__key__": v.key, "mp4": v.path.read_bytes(), "txt": v.caption.encode("utf-8")}
            continue
        try:
            clips = list(cut_clips(v, clip_seconds))
        except Exception as e:  # a file can probe fine and still fail mid-stream
            skipped.append({"file": v.rel, "reason": f"unreadable while cutting: {e}"})
            continue
        counts["videos"] += 1
        yield from clips


def convert_folder(src: str | Path, out: str | Path, captions: str | Path | None = None,
                   clip_seconds: float | None = None, val_fraction: float = 0.0, shard_size: int = 64,
                   seed: int = 0, verbose: bool = True) -> dict:
    """Shard every captioned, decodable video under ``src``; returns a summary with counts and skipped files.

    The val split takes ``round(val_fraction * n)`` whole videos, chosen by a seeded shuffle, so clips
    of one video never straddle the splits. With 0 < val_fraction < 1 and n >= 2 each split keeps at
    least one video; val_fraction=1 puts every video in val (what ``ltx-eval task=vae videos=`` scores).
    """
    src, out = Path(src), Path(out)
    if clip_seconds is not None and clip_seconds <= 0:
        raise ValueError(f"clip_seconds must be > 0, got {clip_seconds}")
    if not 0 <= val_fraction <= 1:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    table_path = Path(captions).resolve() if captions else None
    lookup = CaptionLookup(src, load_caption_table(captions) if captions else None)
    skipped: list[dict] = []
    videos: list[Video] = []
    keys: set[str] = set()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        if path.suffix.lower() in SIDECAR_EXTS or path.name.startswith(".") or path.resolve() == table_path:
            continue
        try:
            info = probe(path)
        except (ValueError, OSError) as e:  # MediaError, or a decoder's own complaint: skip the file, never stop
            skipped.append({"file": rel, "reason": f"not a readable video: {str(e).splitlines()[0][:200]}"})
            continue
        cap = lookup(path)
        if cap is None:
            skipped.append({"file": rel, "reason": "no caption"})
            continue
        key = sanitise_key(rel)
        while key in keys:
            key += "_" + path.suffix.lstrip(".").lower()
        keys.add(key)
        videos.append(Video(rel, path, key, cap, info.fps, info.num_frames, info.has_audio, info.sample_rate))
    n_val = int(round(val_fraction * len(videos)))
    if 0 < val_fraction < 1 and len(videos) >= 2:
        n_val = min(max(n_val, 1), len(videos) - 1)
    order = np.random.default_rng(seed).permutation(len(videos))
    val_ids = set(order[:n_val].tolist())
    split_videos = {"train": [v for i, v in enumerate(videos) if i not in val_ids],
                    "val": [v for i, v in enumerate(videos) if i in val_ids]}
    splits, written, used = {}, {}, {}
    for split, vids in split_videos.items():
        counts = {"videos": 0}
        shards = write_shards(out, split, _samples(vids, clip_seconds, skipped, counts), shard_size)
        written[split] = sum(s["num_samples"] for s in shards)
        used[split] = counts["videos"]
        splits[split] = {"num_samples": written[split], "shards": shards}
    manifest = {"format": "ltx-train-webdataset-v1", "source": "folder",
                "generator": {"name": "ltx_train.data.folder", "src": str(src), "captions": str(captions or ""),
                              "clip_seconds": clip_seconds, "val_fraction": val_fraction, "seed": seed,
                              "shard_size": shard_size},
                "splits": splits}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / MANIFEST, manifest)
    summary = {"written": written, "videos": used, "skipped": skipped, "out": str(out), "manifest": manifest}
    if verbose:
        print(format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    w, v = summary["written"], summary["videos"]
    lines = [f"wrote {w['train']} train + {w['val']} val samples from {v['train'] + v['val']} videos "
             f"to {summary['out']}; skipped {len(summary['skipped'])} files"]
    lines += [f"  skipped {s['file']}: {s['reason']}" for s in summary["skipped"]]
    return "\n".join(lines)
