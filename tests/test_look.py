"""The camera statistics that score motion adapters (ltx_train/eval/look.py) and the weight sweep that
reports them (``ltx-eval task=lora``)."""
from __future__ import annotations

import numpy as np
import pytest

from ltx_train.data.synth import SynthConfig, render_clip
from ltx_train.eval.look import camera_pan_score, room_edge_pan_score
from test_pipeline import pipe  # noqa: F401  (the tiny pipeline fixture)


@pytest.mark.parametrize("palette", ["default", "sepia", "night"])
def test_room_edge_pan_score_reads_the_annotated_pan_of_every_camera_motion(palette):
    """Measured on 120 rendered clips (4 palettes x 5 motions x 6 seeds): 0.005 px/frame rms where it reads."""
    for seed in range(2):
        for camera in ("static", "pan_left", "pan_right", "zoom_in", "zoom_out"):
            clip = render_clip(seed, SynthConfig(camera=camera, palette=palette))
            truth = -clip.annotations["camera"]["pan_speed"] * 64 / 24     # world widths/s -> px/frame
            score = room_edge_pan_score(clip.frames)
            assert abs(score - truth) < 0.03, (palette, seed, camera, score, truth)


def wall_with_band(widths: list[float], size: int = 64) -> np.ndarray:
    """A grey wall with a fine grain that stays put on screen, whose left edge is covered by a dark band
    of the given widths (the room's outside entering as the camera pans left)."""
    grain = np.random.default_rng(1).normal(0, 12, (size, size, 1))
    frames = np.repeat(np.clip(128 + grain, 0, 255)[None], len(widths), 0).repeat(3, -1)
    for t, w in enumerate(widths):
        frames[t, :, : int(round(w))] *= 0.45
    return frames.round().astype(np.uint8)


def test_room_edge_pan_score_reads_a_pan_under_a_still_grain_and_refuses_an_erratic_band():
    """Generated walls can carry a grain that stays put while the room's edge enters (a sepia adapter
    stacked with a motion adapter: experiments/lora.md, session 20). The wall texture then says "still"
    and the edge says "pan"."""
    steady = wall_with_band([0.5 * t for t in range(25)])
    assert abs(room_edge_pan_score(steady) - 0.5) < 0.03
    assert abs(camera_pan_score(steady)) < 0.1             # the grain does not move
    erratic = wall_with_band(list(np.random.default_rng(0).integers(0, 20, 25)))
    assert np.isnan(room_edge_pan_score(erratic))
    assert abs(room_edge_pan_score(wall_with_band([3.0] * 25))) < 1e-9   # a band that does not grow: no pan


def test_lora_weight_sweep_reports_both_pan_statistics_and_counts_unreadable_clips(pipe, tmp_path):  # noqa: F811
    from ltx_train.eval.lora_effect import means, weight_sweep
    from test_lora import trained_adapter

    adapter = trained_adapter(pipe.model, tmp_path, "motion")
    report = weight_sweep(pipe, [("motion", adapter)], [0.0, 1.0], ["a red ball falls", "a blue box slides"],
                          tmp_path / "sweep", steps=2, seconds=0.4, height=32, width=32, seed=3)
    for w in ("0", "1"):
        row = report["weights"][w]
        assert {"pan_px_per_frame", "edge_pan_px_per_frame"} <= set(row["clips"][0])
        assert np.isclose(row["mean_pan_px_per_frame"], np.mean([c["pan_px_per_frame"] for c in row["clips"]]))
    assert (tmp_path / "sweep" / "strip.png").is_file() and (tmp_path / "sweep" / "w1_01.mp4").is_file()
    assert not getattr(pipe.model, "peft_config", None)     # the sweep leaves the base as it found it
    nan = float("nan")
    assert means([{"a": 1.0, "b": nan}, {"a": 3.0, "b": 0.5}]) == {"mean_a": 2.0, "mean_b": 0.5, "unreadable_b": 1}
    assert means([{"b": nan}, {"b": None}]) == {"mean_b": None, "unreadable_b": 2}


def test_lora_mix_script_scores_each_mix_with_both_pan_statistics(pipe, tmp_path):  # noqa: F811
    import json
    import sys
    from pathlib import Path

    from test_lora import trained_adapter
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import lora_mix

    pipe.save_pretrained(tmp_path / "base")
    adapter = trained_adapter(pipe.model, tmp_path, "motion")
    report = lora_mix.main(["--base", str(tmp_path / "base"), "--lora", f"motion={adapter}", "--mix", "0", "--mix", "1",
                            "--prompts", "1", "--steps", "2", "--guidance", "2", "--out", str(tmp_path / "mix.json")])
    assert json.loads((tmp_path / "mix.json").read_text()) == json.loads(json.dumps(report))
    assert report["guidance"] == 2.0 and set(report["mixes"]) == {"0", "1"}
    for row in report["mixes"].values():
        assert len(row["pan_px_per_frame"]) == len(row["edge_pan_px_per_frame"]) == 1
        assert row["edge_readable"] == sum(x is not None for x in row["edge_pan_px_per_frame"])


def test_adherence_camera_layer_reads_a_one_sided_edge_as_a_pan_and_two_sided_as_the_registration_says():
    """The adherence camera layer had the same blind spot: a generated pan whose wall grain stays put
    registered as a zoom out or a still camera (in the stacks of experiments/lora.md, session 20)."""
    from ltx_train.eval.adherence.camera import CameraEstimate, estimate_camera
    from ltx_train.eval.adherence.config import AdherenceConfig

    cfg = AdherenceConfig()
    assert estimate_camera(wall_with_band([0.5 * t for t in range(25)])).motion(cfg) == "pan_left"
    T, H = 25, 64
    zoom_out = CameraEstimate(np.exp(np.linspace(0, -0.2, T)), np.zeros((T, 2)), H, H, edge_growth=(0.2, 0.2))
    assert zoom_out.motion(cfg) == "zoom_out"                                  # both sides uncovered: a zoom
    one_side = CameraEstimate(zoom_out.zoom, zoom_out.shift, H, H, edge_growth=(0.0, 0.3))
    assert one_side.motion(cfg) == "pan_right"                                 # the right side alone: a pan
    unread = CameraEstimate(zoom_out.zoom, zoom_out.shift, H, H, edge_growth=None)
    assert unread.motion(cfg) == "zoom_out"
