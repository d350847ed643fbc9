"""Markdown tables and bar plots of the quality study from the reports of ``scripts/quality_eval.sh``.

    python scripts/quality_tables.py <work dir>/scores experiments/quality

Reads ``<RUN>_t2v_adherence.json``, ``<RUN>_t2v_physics.json`` and ``<RUN>_<i2v|i2vg>_i2v.json``; prints
the tables (real clips first: the ceiling) and writes ``adherence_layers.png`` (per-layer bars) into
the output folder (and frame strips: real clip above the generated ones, ``strips_t2v.png`` /
``strips_i2v.png``), with each report's summary (per-clip rows left out) and the i2v curve plots.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

LAYERS = ("subject", "action", "environment", "lighting", "camera", "timing")
RUNS = ("ltx23", "ltx23_s1", "baseline", "baseline_s1", "nophys", "ltx23_img")


def load(scores: Path, name: str) -> dict | None:
    f = scores / f"{name}.json"
    return json.loads(f.read_text()) if f.is_file() else None


def pct(x) -> str:
    return f"{100 * x:.0f}%" if x is not None else "-"


def adherence_table(scores: Path) -> tuple[str, dict]:
    rows, bars = [], {}
    head = "| clips | " + " | ".join(LAYERS) + " | all layers |\n|---" * 1 + "|---" * (len(LAYERS) + 1) + "|"
    real = None
    for run in RUNS:
        r = load(scores, f"{run}_t2v_adherence")
        if r is None:
            continue
        real = real or r.get("real", {}).get("summary")
        s = r["generated"]["summary"]
        bars[run] = [s[k]["score"] for k in LAYERS]
        rows.append(f"| {run} (text-to-video) | " + " | ".join(f"{s[k]['score']:.2f}" for k in LAYERS)
                    + f" | {s['all_layers']:.2f} |")
    if real:
        bars = {"real (ceiling)": [real[k]["score"] for k in LAYERS], **bars}
        rows.insert(0, f"| real (the ceiling, n={real['num_clips']}) | " + " | ".join(
            f"{real[k]['score']:.2f}" for k in LAYERS) + f" | {real['all_layers']:.2f} |")
    return "\n".join([head] + rows), bars


def physics_row(name: str, s: dict) -> str:
    sync = s.get("sync_within_2_frames")
    return (f"| {name} | {s['tracking_failed']}/{s['num_clips']} | {s['angle_deg']['median']:.1f} | "
            f"{pct(s['within_15deg'])} | {s['bounce_mae']:.2f} | {pct(sync)} of {s['num_visual_contacts']} |")


def physics_table(scores: Path) -> str:
    head = ("| clips | tracking failed | median gravity angle (deg) | within 15 deg | bounce-count error | "
            "A/V sync within 2 frames |\n|---|---|---|---|---|---|")
    rows, real = [], None
    for run in RUNS:
        r = load(scores, f"{run}_t2v_physics")
        if r is not None:
            real = real or r.get("real", {}).get("summary")
            rows.append(physics_row(f"{run} (text-to-video)", r["generated"]["summary"]))
    for run in RUNS:
        for task, what in (("i2v", "image-to-video"), ("i2vg", "image-to-video, image guidance 2")):
            r = load(scores, f"{run}_{task}_i2v")
            if r is not None:
                rows.append(physics_row(f"{run} ({what})", r["physics"]["generated"]["summary"]))
    if real:
        rows.insert(0, physics_row("real (the ceiling)", real))
    return "\n".join([head] + rows)


def i2v_table(scores: Path) -> str:
    head = ("| run | first frame PSNR / SSIM vs input | frame 1 PSNR vs input | mean after frame 0: PSNR vs "
            "input / vs real | real clips' own change after frame 0 (PSNR vs input) |\n|---|---|---|---|---|")
    rows = []
    for run in RUNS:
        for task, what in (("i2v", ""), ("i2vg", ", image guidance 2")):
            r = load(scores, f"{run}_{task}_i2v")
            if r is None:
                continue
            s = r["summary"]
            m = s["mean_after_frame_0"]
            rows.append(f"| {run}{what} | {s['first_frame_psnr']:.1f} dB / {s['first_frame_ssim']:.3f} | "
                        f"{s['vs_input_psnr'][1]:.1f} dB | {m['vs_input_psnr']:.1f} / {m['vs_real_psnr']:.1f} dB | "
                        f"{m['real_vs_input_psnr']:.1f} dB |")
    return "\n".join([head] + rows)


def strip_clips(x):
    if isinstance(x, dict):
        return {k: strip_clips(v) for k, v in x.items() if k != "clips"}
    return x


def bar_plot(bars: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / max(1, len(bars))
    x = np.arange(len(LAYERS))
    for i, (name, values) in enumerate(bars.items()):
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, LAYERS)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of clips that pass")
    ax.set_title("prompt adherence per layer: 64 held-out captions, text-to-video (real clips: the ceiling)")
    ax.legend(fontsize=7, ncol=4)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def frame_strips(gen: Path, out: Path, runs: list[tuple[str, str]], clips: int = 4, frames: int = 7) -> None:
    """Rows per held-out caption: the real clip, then each (run, task) folder's clip of it; ``frames``
    frames evenly over the 25."""
    import numpy as np
    from PIL import Image

    from ltx_train.data.synth import SynthConfig, render_clip
    from ltx_train.media import read_video

    picks = np.linspace(0, 24, frames).round().astype(int)
    rows = []
    for i in range(clips):
        real = render_clip(10**9 + i, SynthConfig(width=64, height=64)).frames
        rows.append(np.concatenate(list(real[picks]), axis=1))
        for run, task in runs:
            files = sorted((gen / f"{run}_{task}").glob("*.mp4"))
            video = read_video(files[i])
            rows.append(np.concatenate(list(video[picks]), axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    Image.fromarray(np.concatenate(rows, axis=0)).resize((rows[0].shape[1] * 2, sum(r.shape[0] for r in rows) * 2),
                                                        Image.NEAREST).save(out)


def main() -> None:
    scores, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    table, bars = adherence_table(scores)
    print("## adherence\n" + table + "\n\n## physics\n" + physics_table(scores) + "\n\n## image-to-video\n"
          + i2v_table(scores))
    if bars:
        bar_plot(bars, out / "adherence_layers.png")
    for f in scores.glob("*.json"):   # the summaries only: the per-clip rows stay in the work dir
        out_file = out / f.name.replace(".json", "_summary.json")
        out_file.write_text(json.dumps(strip_clips(json.loads(f.read_text())), indent=1) + "\n")
    for f in scores.glob("*_i2v/i2v_curves.png"):
        shutil.copy(f, out / f"{f.parent.name}_curves.png")
    gen = scores.parent / "gen"
    t2v = [(r, "t2v") for r in ("ltx23", "baseline") if (gen / f"{r}_t2v" / "done").exists()]
    if t2v:
        frame_strips(gen, out / "strips_t2v.png", t2v)
    i2v = [(r, t) for r, t in (("ltx23", "i2v"), ("ltx23_img", "i2v")) if (gen / f"{r}_{t}" / "done").exists()]
    if i2v:
        frame_strips(gen, out / "strips_i2v.png", i2v)


if __name__ == "__main__":
    main()
