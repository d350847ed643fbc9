"""`ltx-plot`: loss / metric curves of several runs (a sweep) from their CSV logs, into one PNG.

    ltx-plot outputs/vae_tiny/multiruns/2026-12-01_21-36-50                 # every job of a sweep
    ltx-plot runA runB --metrics train/loss val/psnr --out curves.png       # chosen runs and metrics

A run is a ``metrics.csv`` found under a given directory (``<run>/csv/version_0/metrics.csv``); it is
labelled by its Hydra overrides that differ between the runs plotted (``model.lr=0.002``), else by its
directory. A resumed run appends to its file, so a step can appear twice: the last row of a step wins.
Without ``--metrics``: ``train/loss`` and the ``val/*`` metrics (at most ``--max-metrics``).
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import yaml


def read_metrics(path: Path) -> dict[str, dict[int, float]]:
    """metrics.csv -> {metric: {step: value}} (empty cells skipped, the last row of a step kept)."""
    out: dict[str, dict[int, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("step"):
                continue
            step = int(float(row["step"]))
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in (None, ""):
                    out.setdefault(key, {})[step] = float(value)
    return out


def _run_dir(metrics_csv: Path) -> Path:
    for parent in metrics_csv.parents:
        if (parent / ".hydra").is_dir():
            return parent
    return metrics_csv.parent


def find_runs(paths: list[Path]) -> list[tuple[Path, Path]]:
    """[(run dir, metrics.csv)] under each path, in path then directory order."""
    runs = []
    for p in paths:
        files = [p] if p.is_file() else sorted(p.rglob("metrics.csv"))
        if not files:
            raise FileNotFoundError(f"{p}: no metrics.csv under it (runs log one with logger=csv or logger=many)")
        runs += [(_run_dir(f), f) for f in files]
    return runs


def labels(runs: list[tuple[Path, Path]]) -> list[str]:
    """Each run's overrides that not all runs share, else its directory name."""
    overrides = []
    for run, _ in runs:
        f = run / ".hydra" / "overrides.yaml"
        overrides.append(list(yaml.safe_load(f.read_text()) or []) if f.is_file() else [])
    common = set.intersection(*(set(o) for o in overrides)) if overrides else set()
    out = []
    for (run, _), o in zip(runs, overrides):
        differ = [x for x in o if x not in common]
        out.append(" ".join(differ) if differ else run.name)
    return out


def default_metrics(curves: list[dict], limit: int) -> list[str]:
    present = sorted({k for c in curves for k in c})
    chosen = [k for k in ("train/loss",) if k in present] + [k for k in present if k.startswith("val/")]
    return chosen[:limit] or present[:limit]


def plot(paths: list[Path], out: Path, metrics: list[str] | None = None, max_metrics: int = 4) -> Path:
    import matplotlib
    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    runs = find_runs(paths)
    curves = [read_metrics(f) for _, f in runs]
    metrics = metrics or default_metrics(curves, max_metrics)
    missing = [m for m in metrics if not any(m in c for c in curves)]
    if missing:
        known = sorted({k for c in curves for k in c})
        raise KeyError(f"--metrics: {', '.join(missing)} not logged by any run; logged: {', '.join(known)}")
    cols = min(2, len(metrics))
    fig, axes = plt.subplots(math.ceil(len(metrics) / cols), cols, figsize=(6 * cols, 3.6 * math.ceil(len(metrics) / cols)),
                             squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes.flat, metrics):
        for i, (label, curve) in enumerate(zip(labels(runs), curves)):
            points = sorted(curve.get(metric, {}).items())
            if points:   # a run keeps its colour in every panel, also where another run logged nothing
                ax.plot(*zip(*points), label=label, color=colours[i % len(colours)],
                        marker="o" if len(points) < 20 else None, markersize=3)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(prog="ltx-plot", description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+", type=Path, help="run or sweep directories (or metrics.csv files)")
    ap.add_argument("--metrics", nargs="+", default=None, help="metric columns (default: train/loss, val/*)")
    ap.add_argument("--max-metrics", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="PNG path (default: <first path>/curves.png)")
    args = ap.parse_args(argv)
    first = args.paths[0]
    out = args.out or ((first.parent if first.is_file() else first) / "curves.png")
    path = plot(args.paths, out, args.metrics, args.max_metrics)
    print(f"[ltx-plot] {len(find_runs(args.paths))} runs -> {path}")
    return path


if __name__ == "__main__":
    main()
