"""Physics and audio-video sync evaluation of clips (the ``ltx-eval task=physics`` backend).

A clip is judged against what it should show: for a generated clip, the physics its prompt states
(object colours, gravity direction, number of bounces); for a real shard, its annotations, which
gives the ceiling of every measure (what a perfect generator would score with this tracker).

Per clip: objects are tracked by colour, their motion fitted as piecewise constant-acceleration
flight (``physics.py``), the angle between the fitted acceleration and the expected gravity and the
bounce-count error reported, and the visual contacts (breaks between flights) matched to audio
onsets (``av_sync.py``).
"""
from __future__ import annotations

import argparse
import json
import tarfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ltx_train.eval.av_sync import SYNC_TOLERANCE_FRAMES, detect_onsets, sync_errors_ms, sync_summary
from ltx_train.eval.physics import angle_deg, combine_accelerations, fit_motion, track_objects
from ltx_train.eval.prompts import parse_prompt
from ltx_train.media import MediaError, Source, probe, read_audio, read_video

ANGLE_TOLERANCE_DEG = 15.0   # DESIGN: fitted acceleration within 15 degrees of the prompt's gravity
MIN_TRACKED_FRACTION = 0.5   # an object seen in fewer frames than this counts as a tracking failure
MIN_FIT_FRAMES = 6           # fewer detections of an object are not used at all
# Floor of the tracking noise, in pixels. Sub-pixel centroids of clean renders are ~0.03 px
# accurate (median), 0.1-0.15 px at the 90th percentile; a lower floor finds more of the small
# bounces but also more spurious ones (measured on synthetic clips, experiments/physics_eval_ceiling.md).
NOISE_FLOOR_PX = 0.15


@dataclass
class PhysicsSpec:
    """What a clip should show. ``gravity``: (2,) screen direction (x right, y down)."""
    colors: list[tuple[int, int, int]]
    gravity: np.ndarray | None = None
    expected_bounces: int | None = None            # total over objects
    contact_times: list[float] | None = None       # exact contact instants (annotations only)


@dataclass
class EvalClip:
    key: str
    frames: np.ndarray                 # (T, H, W, 3) uint8
    audio: np.ndarray | None           # (S,) or (C, S) float
    sample_rate: int
    fps: float
    spec: PhysicsSpec
    caption: str = ""
    meta: dict = field(default_factory=dict)


def spec_from_annotations(ann: dict) -> PhysicsSpec:
    """Expected physics of a real clip, from its annotation JSON (``data/README.md``)."""
    return PhysicsSpec(
        colors=[tuple(int(c) for c in o["color"]) for o in ann["objects"]],
        gravity=np.asarray(ann["gravity"], dtype=np.float64),
        expected_bounces=len(ann.get("contacts", [])),
        contact_times=[float(c["time"]) for c in ann.get("contacts", [])],
    )


def spec_from_prompt(caption: str) -> PhysicsSpec:
    """Expected physics of a generated clip, from the facts its prompt states."""
    facts = parse_prompt(caption)
    # a prompt that does not mention gravity describes the everyday world, where it pulls down
    gravity = facts.gravity if facts.gravity is not None else np.array([0.0, 1.0])
    return PhysicsSpec(colors=list(facts.colors), gravity=gravity, expected_bounces=facts.bounces)


# ----------------------------------------------------------------------------- one clip
def evaluate_clip(frames: np.ndarray, audio: np.ndarray | None, sample_rate: int, fps: float,
                  spec: PhysicsSpec) -> dict:
    """Measures of one clip; frames (T, H, W, 3) uint8, audio (S,) / (C, S) float or None."""
    T, H, W, _ = frames.shape
    tracks = track_objects(frames, spec.colors) if spec.colors else np.zeros((T, 0, 2))
    fits = [fit_motion(tracks[:, k], fps, aspect=W / H, noise_floor=NOISE_FLOOR_PX / H)
            for k in range(tracks.shape[1])]
    tracked = [f.num_valid >= MIN_TRACKED_FRACTION * T for f in fits]
    # an object seen for a short stretch (the rest of the time outside the frame) still shows
    # free flight and contacts; only a handful of points is too few to fit anything
    used = [f for f in fits if f.num_valid >= MIN_FIT_FRAMES]
    # every object falls under the same gravity, so all free flights are pooled into one estimate
    accel, accel_std = combine_accelerations([s for f in used for s in f.segments])
    gravity = spec.gravity if spec.gravity is not None else np.full(2, np.nan)
    bounces = int(sum(f.num_bounces for f in used))
    visual = np.sort(np.concatenate([f.contact_times for f in used])) if used else np.zeros(0)
    onsets = detect_onsets(audio, sample_rate) if audio is not None else np.zeros(0)
    errors = sync_errors_ms(visual, onsets)
    out = {
        "num_frames": T, "fps": fps, "num_objects": len(fits), "objects_tracked": int(sum(tracked)),
        "tracking_failed": not all(tracked) or not fits,
        "accel": accel.tolist(), "accel_std": np.asarray(accel_std).tolist(),
        "gravity": gravity.tolist(), "angle_deg": angle_deg(accel, gravity),
        "bounces_detected": bounces, "bounces_expected": spec.expected_bounces,
        "bounce_error": None if spec.expected_bounces is None else bounces - spec.expected_bounces,
        "visual_contacts": visual.tolist(), "audio_onsets": onsets.tolist(),
        "has_audio": audio is not None, "sync_errors_ms": errors.tolist(), "sync": sync_summary(errors, fps),
        "objects": [{"color": list(c), "valid_frames": f.num_valid, "accel": f.accel.tolist(),
                     "angle_deg": angle_deg(f.accel, gravity), "bounces": f.num_bounces,
                     "contacts": f.contact_times.tolist(), "noise_px": f.noise * H}
                    for c, f in zip(spec.colors, fits)],
    }
    if spec.contact_times is not None:
        # diagnostics only known for annotated clips: how far each detector is from the truth
        truth = np.asarray(spec.contact_times, dtype=np.float64)
        out["audio_vs_truth_ms"] = sync_errors_ms(truth, onsets).tolist()
        out["visual_vs_truth_ms"] = sync_errors_ms(truth, visual).tolist()
    return out


# ----------------------------------------------------------------------------- many clips
def _stats(values: list[float]) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return {"n": 0, "mean": float("nan"), "median": float("nan")}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v))}


def aggregate(results: list[dict]) -> dict:
    """Summary of per-clip results. Clips without a measurable angle count as outside 15 degrees;
    contacts without any audio onset count as outside 2 frames."""
    n = len(results)
    angles = [r["angle_deg"] for r in results]
    within = [a is not None and np.isfinite(a) and a <= ANGLE_TOLERANCE_DEG for a in angles]
    bounce_err = [r["bounce_error"] for r in results if r["bounce_error"] is not None]
    sync = [(e, r["fps"]) for r in results if r["has_audio"] for e in r["sync_errors_ms"]]
    in_sync = [np.isfinite(e) and e <= 1000.0 * SYNC_TOLERANCE_FRAMES / fps for e, fps in sync]
    out = {
        "num_clips": n,
        "tracking_failed": int(sum(r["tracking_failed"] for r in results)),
        "no_acceleration": int(sum(not np.isfinite(a) for a in angles)),
        "angle_deg": _stats(angles),
        "within_15deg": float(np.mean(within)) if n else float("nan"),
        "bounce_mae": float(np.mean(np.abs(bounce_err))) if bounce_err else float("nan"),
        "bounce_bias": float(np.mean(bounce_err)) if bounce_err else float("nan"),
        "sync_ms": _stats([e for e, _ in sync]),
        "sync_within_2_frames": float(np.mean(in_sync)) if in_sync else float("nan"),
        "num_visual_contacts": len(sync),
        "clips_without_audio": int(sum(not r["has_audio"] for r in results)),
    }
    for key in ("audio_vs_truth_ms", "visual_vs_truth_ms"):
        vals = [e for r in results for e in r.get(key, [])]
        if vals:
            out[key] = _stats(vals)
    return out


def evaluate_clips(clips: Iterable[EvalClip]) -> dict:
    """{"summary": aggregate, "clips": [{"key", "caption", ...per-clip measures}]}."""
    results = []
    for c in clips:
        r = evaluate_clip(c.frames, c.audio, c.sample_rate, c.fps, c.spec)
        results.append({"key": c.key, "caption": c.caption, **c.meta, **r})
    return {"summary": aggregate(results), "clips": results}


# ----------------------------------------------------------------------------- reading clips
def read_eval_clip(src: Source) -> tuple[np.ndarray, float, np.ndarray | None, int]:
    """mp4 path or bytes -> (frames (T, H, W, 3) uint8, fps, audio (S,) float32 mono or None, sample_rate).

    The audio is the video's span [0, T / fps) at the track's own rate (a mix-down, no resampling
    delay), so its sample n is at n / sample_rate seconds, the clock of the frames' contacts."""
    info = probe(src)
    frames = read_video(src)
    audio = read_audio(src, 0.0, len(frames) / info.fps, mono=True) if info.has_audio else None
    return frames, info.fps, None if audio is None else audio[0], info.sample_rate


def read_shard_samples(path: str | Path) -> Iterator[dict]:
    """WebDataset tar -> dicts {"__key__", "mp4", "txt", "json"} (bytes), grouped by key."""
    sample: dict = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rsplit("/", 1)[-1]
            key, _, ext = name.partition(".")
            if sample and key != sample["__key__"]:
                yield sample
                sample = {}
            sample["__key__"] = key
            sample[ext] = tar.extractfile(member).read()
    if sample:
        yield sample


def _judgeable(sample: dict) -> dict | None:
    """The annotations of a sample that has a video and physics labels with object colours; None
    for user clips without labels and for broken samples (bad JSON), which are skipped."""
    if "mp4" not in sample or "json" not in sample:
        return None
    try:
        ann = json.loads(sample["json"])
    except ValueError:
        warnings.warn(f"{sample['__key__']}: unreadable annotations, skipped")
        return None
    objects = ann.get("objects") or []
    return ann if objects and all("color" in o for o in objects) and "gravity" in ann else None


def shard_clips(paths: Iterable[str | Path], limit: int | None = None) -> Iterator[EvalClip]:
    """Annotated clips of shards, judged against their annotations (the ceiling)."""
    count = 0
    for path in paths:
        for s in read_shard_samples(path):
            if limit is not None and count >= limit:
                return
            ann = _judgeable(s)
            if ann is None:
                continue
            try:
                frames, fps, audio, sr = read_eval_clip(s["mp4"])
            except MediaError as e:
                warnings.warn(f"{s['__key__']}: undecodable video ({e}), skipped")
                continue
            meta = {"source": str(path), "camera": ann.get("camera", {}).get("motion"),
                    "gravity_name": ann.get("gravity_name")}
            yield EvalClip(s["__key__"], frames, audio, sr, fps, spec_from_annotations(ann),
                           s.get("txt", b"").decode("utf-8"), meta)
            count += 1


def generated_clips(folder: str | Path, limit: int | None = None) -> Iterator[EvalClip]:
    """Generated ``*.mp4`` in a folder, each judged against the prompt in the ``.txt`` beside it."""
    for i, mp4 in enumerate(sorted(Path(folder).glob("*.mp4"))):
        if limit is not None and i >= limit:
            return
        caption = mp4.with_suffix(".txt").read_text(encoding="utf-8")
        frames, fps, audio, sr = read_eval_clip(mp4)  # a broken file fails here, naming it
        yield EvalClip(mp4.stem, frames, audio, sr, fps, spec_from_prompt(caption), caption,
                       {"source": str(mp4)})


def _jsonable(x):
    """NaN / inf -> None (strict JSON), numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_report(report: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_jsonable(report), indent=1, allow_nan=False))


def score_sources(evaluate, shard_clips, generated_clips, shards: list[str] | None, generated: str | None,
                  limit: int | None, out: str | None) -> dict:
    """``{"real": ..., "generated": ...}``: ``evaluate`` of the clips of annotated shards (the ceiling)
    and/or of a folder of generated clips, read by the metric's own readers; optional JSON report. Shared
    by the clip metrics (physics here, ``adherence``)."""
    report = {}
    if shards:
        report["real"] = evaluate(shard_clips(shards, limit))
    if generated:
        report["generated"] = evaluate(generated_clips(generated, limit))
    if out:
        write_report(report, out)
    return report


def run(shards: list[str] | None = None, generated: str | None = None, limit: int | None = None,
        out: str | None = None) -> dict:
    """Evaluate real shards (ceiling) and/or a folder of generated clips; optional JSON report."""
    return score_sources(evaluate_clips, shard_clips, generated_clips, shards, generated, limit, out)


def clip_metric_main(run, doc: str, argv: list[str] | None = None) -> None:
    """The command line of a clip metric: ``--shards``, ``--generated``, ``--limit``, ``--out``."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--shards", nargs="*", default=None, help="annotated WebDataset tars (the ceiling)")
    p.add_argument("--generated", default=None, help="folder of generated .mp4 with .txt prompts")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default=None, help="JSON report path")
    a = p.parse_args(argv)
    report = run(a.shards, a.generated, a.limit, a.out)
    print(json.dumps(_jsonable({k: v["summary"] for k, v in report.items()}), indent=1))


def main(argv: list[str] | None = None) -> None:
    clip_metric_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
