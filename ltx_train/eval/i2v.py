"""Image-to-video fidelity of continued held-out clips (the ``ltx-eval task=i2v`` backend).

``ltx-generate from_shards=<shards> limit=N`` continues held-out clips: each prompt is a clip's caption
and that clip's first frame, decoded as validation decodes (``generate.held_out_batches``), conditions the
sample. Its ``prompts.json`` records, per generated file, the source sample ``key`` and shard ``url`` and
the clip geometry (``num_frames``, ``fps``, ``height``, ``width``) the source was decoded at. Here every
source is decoded again by that same path, at that geometry, so its frame 0 is the conditioning image,
and each generated clip is compared with it frame by frame, on [0, 1] pixels, with the PSNR / SSIM of
``recon.py``:

- first-frame fidelity: generated frame 0 against the conditioning image (source frame 0);
- ``vs_input``: generated frame k against the conditioning image, for every k: decays as things move
  (a frozen clip keeps it high);
- ``vs_real``: generated frame k against source frame k: how close the clip stays to the real continuation;
- ``real_vs_input``: source frame k against source frame 0: the reference for how much the scene changes.

The report also holds ``ltx-eval task=physics``'s report of the same inputs (``physics``: the generated
clips judged against their prompts, the shards' annotated clips as the ceiling).

Generated clips are never resized: a clip whose size or length is not the recorded geometry of its source
is an error naming both. (A manifest without the geometry, from an older ``ltx-generate``, takes the
generated clip's own size, length and frame rate, which is what ``ltx-generate`` conditions at.)
PSNR is capped at ``PSNR_CAP_DB`` (identical frames; a single 8-bit difference in a 64x64 frame is
~89 dB), so means and curves stay finite; ``real_vs_input`` is at the cap at k = 0 by definition.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ltx_train.data.shardlist import resolve_shards
from ltx_train.eval.physics_eval import run as physics_run, write_report
from ltx_train.eval.recon import psnr_values, ssim_values
from ltx_train.eval.video_io import to_uint8_frames
from ltx_train.media import probe, read_video

PSNR_CAP_DB = 100.0
CURVES = ("vs_input", "vs_real", "real_vs_input")
MANIFEST = "prompts.json"   # written by ltx-generate
PLOT = "i2v_curves.png"     # beside the report


class PairingError(ValueError):
    """A generated clip whose source clip cannot be found or does not match it."""


# ----------------------------------------------------------------------------- metrics
def _unit(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def _scores(pred: torch.Tensor, target: torch.Tensor) -> dict:
    return {"psnr": psnr_values(pred, target).clamp(max=PSNR_CAP_DB).tolist(),
            "ssim": ssim_values(pred, target).tolist()}


def frame_curves(generated: np.ndarray, source: np.ndarray) -> dict:
    """Per-frame PSNR / SSIM curves of one generated clip and its source, both (T, H, W, 3) uint8 of one
    shape: {"vs_input", "vs_real", "real_vs_input": {"psnr": [T], "ssim": [T]}}."""
    if generated.shape != source.shape:
        raise ValueError(f"generated {generated.shape} and source {source.shape} frames differ in shape")
    g, s = _unit(generated), _unit(source)
    image = s[:1].expand_as(s)
    return {"vs_input": _scores(g, image), "vs_real": _scores(g, s), "real_vs_input": _scores(s, image)}


# ----------------------------------------------------------------------------- pairing
def generated_files(folder: str | Path, limit: int | None = None) -> list[Path]:
    """The ``*.mp4`` of a folder in name order (``ltx-generate``'s prompt order), the first ``limit``:
    the clips ``ltx-eval task=physics`` reads from it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"generated: no such folder {folder}")
    files = sorted(folder.glob("*.mp4"))
    if not files:
        raise FileNotFoundError(f"generated: no .mp4 in {folder} (ltx-generate from_shards=... writes them)")
    return files if limit is None else files[:limit]


def read_manifest(folder: str | Path) -> dict[str, dict]:
    """``prompts.json`` of an ``ltx-generate`` output folder: {file name: record}."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"generated: {folder} has no {MANIFEST}; task=i2v pairs each clip with its source "
                                f"through the one ltx-generate from_shards=... writes")
    records = json.loads(path.read_text(encoding="utf-8"))
    return {r["file"]: r for r in records}


def _geometry(mp4: Path, record: dict, source: str) -> tuple[int, float, int, int]:
    """(num_frames, fps, height, width) to decode the source of ``mp4`` at: the recorded geometry, which
    the generated clip must have (no resizing), else the clip's own."""
    info = probe(mp4)
    own = {"num_frames": info.num_frames, "fps": info.fps, "height": info.height, "width": info.width}
    geo = {k: record.get(k, v) for k, v in own.items()}
    if (own["height"], own["width"]) != (geo["height"], geo["width"]):
        raise PairingError(f"{mp4} is {own['width']}x{own['height']} but its source {source} conditioned it at "
                           f"{geo['width']}x{geo['height']}; task=i2v does not resize generated clips")
    if own["num_frames"] != geo["num_frames"]:
        raise PairingError(f"{mp4} has {own['num_frames']} frames but its source {source} was decoded as a "
                           f"{geo['num_frames']}-frame clip")
    return int(geo["num_frames"]), float(geo["fps"]), int(geo["height"]), int(geo["width"])


def source_clips(shards, wanted: dict[str, tuple[int, float, int, int]]) -> dict[str, tuple[np.ndarray, str]]:
    """{key: ((T, H, W, 3) uint8 frames, shard url)} of the wanted sample keys of ``shards``, each decoded
    at its geometry (num_frames, fps, height, width) as ``ltx-generate from_shards`` decoded it."""
    from ltx_train.generate import held_out_batches

    found: dict[str, tuple[np.ndarray, str]] = {}
    for geometry in sorted(set(wanted.values())):
        keys = {k for k, g in wanted.items() if g == geometry}
        for batch in held_out_batches(shards, None, *geometry):
            for i, key in enumerate(batch["key"]):
                if key in keys and key not in found:
                    found[key] = (to_uint8_frames(batch["video"][i]), str(batch["url"][i]))
            if keys <= found.keys():
                break
    return found


def paired_clips(generated: str | Path, shards, limit: int | None = None) -> list[dict]:
    """Each generated clip of the folder (first ``limit``) with its source: dicts with "file", "record"
    (its prompts.json entry), "geometry" (num_frames, fps, height, width), "frames" (generated, uint8),
    "source" (the source clip's frames, uint8, same shape) and "url" (the shard it was read from)."""
    files, manifest = generated_files(generated, limit), read_manifest(generated)
    wanted, rows = {}, []
    for mp4 in files:
        record = manifest.get(mp4.name)
        if record is None:
            raise PairingError(f"{mp4}: no record in {Path(generated) / MANIFEST}, so no known source clip")
        if not record.get("key"):
            raise PairingError(f"{mp4}: its {MANIFEST} record names no source clip (key); it was not generated with "
                               f"ltx-generate from_shards=...")
        source = f"{record['key']!r} ({record.get('url') or 'shard not recorded'})"
        geometry = _geometry(mp4, record, source)
        if wanted.setdefault(record["key"], geometry) != geometry:
            raise PairingError(f"{mp4}: source {source} is also the source of another clip at another geometry")
        rows.append({"file": mp4, "record": record, "geometry": geometry})
    sources = source_clips(shards, wanted)
    for row in rows:
        key, (T, fps, H, W) = row["record"]["key"], row["geometry"]
        if key not in sources:
            raise PairingError(f"{row['file']}: its source clip {key!r} (recorded shard "
                               f"{row['record'].get('url') or '?'}) is not among the decodable {T}-frame clips "
                               f"({T / fps:.2f} s at {fps:g} fps) of shards {shards!r}")
        frames = read_video(row["file"])   # a broken file raises MediaError naming it
        row.update(frames=frames, source=sources[key][0], url=sources[key][1])
        if frames.shape != row["source"].shape:   # decoded frames disagree with the probe: name both
            raise PairingError(f"{row['file']} frames {frames.shape} do not match its source {key!r} "
                               f"({row['url']}) decoded at {row['source'].shape}")
    return rows


# ----------------------------------------------------------------------------- report
def _mean_curve(clips: list[dict], curve: str, metric: str) -> list[float]:
    """Mean over clips at each frame (clips shorter than a frame index leave it)."""
    n = max(len(c["curves"][curve][metric]) for c in clips)
    table = np.full((len(clips), n), np.nan)
    for i, c in enumerate(clips):
        v = c["curves"][curve][metric]
        table[i, :len(v)] = v
    return np.nanmean(table, axis=0).tolist()


def curve_frames(num_frames: int) -> list[int]:
    """The frames the summary quotes the curves at: 0, 1, a quarter, half and the last."""
    return sorted({k for k in (0, 1, num_frames // 4, num_frames // 2, num_frames - 1) if 0 <= k < num_frames})


def summarise(clips: list[dict], curves: dict, physics: dict) -> dict:
    n = len(curves["vs_input"]["psnr"])
    at = curve_frames(n)
    out = {
        "num_clips": len(clips),
        "first_frame_psnr": float(np.mean([c["first_frame_psnr"] for c in clips])),
        "first_frame_ssim": float(np.mean([c["first_frame_ssim"] for c in clips])),
        "frames": at,
        # the per-frame mean curves at those frames, and their mean over frames 1.. (the continuation)
        **{f"{name}_{m}": [curves[name][m][k] for k in at] for name in CURVES for m in ("psnr", "ssim")},
        "mean_after_frame_0": {f"{name}_{m}": float(np.mean(curves[name][m][1:])) if n > 1 else float("nan")
                               for name in CURVES for m in ("psnr", "ssim")},
    }
    out["physics"] = {part: r["summary"] for part, r in physics.items()}
    return out


def plot_curves(curves: dict, path: str | Path, title: str = "") -> Path:
    """PSNR and SSIM against frame index, the three curves, as a PNG (values at the PSNR cap left out)."""
    import matplotlib
    matplotlib.use("Agg")  # files only, as ltx-plot
    import matplotlib.pyplot as plt

    labels = {"vs_input": "generated k vs input image", "vs_real": "generated k vs real k",
              "real_vs_input": "real k vs input image (reference)"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric, unit in zip(axes, ("psnr", "ssim"), (" (dB)", "")):
        for name in CURVES:
            v = np.asarray(curves[name][metric], dtype=np.float64)
            if metric == "psnr":
                v = np.where(v >= PSNR_CAP_DB, np.nan, v)
            ax.plot(np.arange(len(v)), v, label=labels[name], marker="o" if len(v) < 30 else None, markersize=3)
        ax.set_xlabel("frame k")
        ax.set_ylabel(metric.upper() + unit)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(shards: list[str] | str | None, generated: str | Path | None, limit: int | None = None,
        out: str | None = None, plot: bool = True) -> dict:
    """Score a folder of ``ltx-generate from_shards=...`` clips against their source clips in ``shards``
    (the first ``limit`` clips, in name order); optional JSON report at ``out`` (and the curves' PNG
    beside it when ``plot``). Returns the report: {"summary", "curves", "clips", "physics", "plot"}."""
    if not generated:
        raise FileNotFoundError("task=i2v needs generated=<folder of ltx-generate from_shards=... clips>")
    if not shards:
        raise FileNotFoundError("task=i2v needs shards=<the shards ltx-generate from_shards= continued>")
    shards = resolve_shards(shards, "val")   # a pattern, folder or list, as ltx-generate takes it
    clips = []
    for row in paired_clips(generated, shards, limit):
        c = frame_curves(row["frames"], row["source"])
        T, fps, H, W = row["geometry"]
        clips.append({"file": row["file"].name, "key": row["record"]["key"], "url": row["url"],
                      "prompt": row["record"].get("prompt"), "num_frames": T, "fps": fps, "size": [H, W],
                      "first_frame_psnr": c["vs_input"]["psnr"][0], "first_frame_ssim": c["vs_input"]["ssim"][0],
                      "curves": c})
    curves = {name: {m: _mean_curve(clips, name, m) for m in ("psnr", "ssim")} for name in CURVES}
    physics = physics_run(shards, str(generated), limit, None)   # exactly ltx-eval task=physics's report
    report = {"summary": summarise(clips, curves, physics),
              "curves": {"frames": list(range(len(curves["vs_input"]["psnr"]))), **curves},
              "clips": clips, "physics": physics, "psnr_cap_db": PSNR_CAP_DB, "plot": None}
    if out and plot:
        report["plot"] = str(plot_curves(curves, Path(out).with_name(PLOT),
                                         f"image-to-video: {len(clips)} clips of {generated}"))
    if out:
        write_report(report, out)
    return report
