"""Specification of the prompt-adherence metric (``ltx-eval task=adherence``, ltx_train/eval/adherence/)."""
from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from ltx_train.config import ConfigError
from ltx_train.data.captions import caption
from ltx_train.data.synth import SynthConfig, annotate, render_clip
from ltx_train.data.synth_world import CAMERA_MOTIONS, GRAVITY_NAMES, evaluate as kinematics, sample_scene
from ltx_train.eval.adherence import (LAYERS, AdherenceConfig, CameraEstimate, aggregate, background_model,
                                      claims_from_annotations, claims_from_text, drop_wall_blobs, estimate_camera,
                                      judge, measure_clip, parse_caption, run, wall_pixels)
from ltx_train.evaluate import evaluate
from ltx_train.hydra_utils import CONF_DIR, register_resolvers
from ltx_train.media import write_mp4

register_resolvers()


def scene_caption_and_annotations(seed: int, cfg: SynthConfig) -> tuple[str, dict]:
    """The caption and annotation JSON of a clip, without drawing its frames."""
    scene = sample_scene(seed, cfg)
    times = np.arange(cfg.num_frames) / cfg.fps
    states = [kinematics(tr, scene.gravity, times) for tr in scene.trajectories]
    pos, vel = np.stack([p for p, _ in states], 1), np.stack([v for _, v in states], 1)
    contacts = sorted(({**c, "object": i} for i, tr in enumerate(scene.trajectories) for c in tr.contacts),
                      key=lambda c: (c["time"], c["object"]))
    return caption(scene, contacts), annotate(scene, cfg, times, pos, vel, contacts)


# ----------------------------------------------------------------------------- caption parser
def test_caption_parser_round_trips_every_kind_of_generator_caption():
    """Every look, clip length, object count and forced camera / gravity: the caption parsed back
    gives exactly the claims computed from the clip's annotations."""
    configs = [SynthConfig(palette=p, num_frames=n, max_objects=k)
               for p, n, k in itertools.product(("default", "sepia", "neon", "night"), (25, 121), (3, 6))]
    configs += [SynthConfig(camera=c) for c in CAMERA_MOTIONS] + [SynthConfig(gravity=g) for g in GRAVITY_NAMES]
    configs += [SynthConfig(num_frames=n, max_objects=6) for n in (2, 4)]   # short clips: objects that never land
    seen = {"tilted": 0, "more": 0, "nothing": 0, "quiet": 0, "start": 0, "above": 0, "soft": 0, "crisp": 0}
    for cfg in configs:
        for seed in range(18):
            text, ann = scene_caption_and_annotations(seed, cfg)
            claims = parse_caption(text)
            assert claims == claims_from_annotations(ann), text
            assert [o.color_name for o in claims.objects] == [o["color_name"] for o in ann["objects"]]
            assert claims.camera == ann["camera"]["motion"] and claims.palette == cfg.palette
            assert claims.num_contacts == len(ann["contacts"])
            if claims.contacts:
                assert abs(claims.first_contact.time - ann["contacts"][0]["time"]) <= 0.05 + 1e-9
            seen["tilted"] += claims.gravity == "tilted"
            seen["more"] += claims.more_contacts > 0
            seen["nothing"] += claims.contacts == ()
            seen["quiet"] += bool(claims.quiet) and claims.contacts != ()
            seen["start"] += bool(claims.contacts) and claims.first_contact.time == 0.0
            seen["above"] += bool(claims.light_above)
            seen[claims.shadows] += 1
    assert all(n > 0 for n in seen.values()), seen   # every branch of the grammar was exercised


def test_parser_leaves_unstated_layers_out_and_refuses_a_caption_without_claims():
    partial = parse_caption("A red rubber ball moves inside a closed box. The camera slowly zooms in.")
    assert [o.color_name for o in partial.objects] == ["red"] and partial.camera == "zoom_in"
    assert partial.gravity is None and partial.contacts is None and partial.light_side is None
    assert partial.palette is None
    layers = judge(partial, measure_clip(render_clip(3).frames, 24.0))["layers"]
    assert layers["action"] is None and layers["timing"] is None and layers["lighting"] is None
    with pytest.raises(ValueError, match="prompts/7.txt"):
        claims_from_text("a dog runs on the beach", "prompts/7.txt")
    with pytest.raises(ValueError, match="clip-9.json"):
        claims_from_annotations({"objects": [{"shape": "ball"}]}, "clip-9.json")


# ----------------------------------------------------------------------------- estimators on rendered clips
@pytest.fixture(scope="module")
def rendered():
    """15 clips of the demo dataset (64x64, 25 frames, seeds 11-25), three per camera motion, measured
    once: [(clip, claims, measurement)]."""
    out = []
    for i, motion in enumerate(CAMERA_MOTIONS):
        for seed in range(11 + 3 * i, 14 + 3 * i):
            clip = render_clip(seed, SynthConfig(camera=motion))
            out.append((clip, claims_from_annotations(clip.annotations), measure_clip(clip.frames, 24.0)))
    return out


def test_each_estimator_recovers_the_truth_on_most_real_clips(rendered):
    """Rates measured on these 15 clips (raw renders): subject 15/15, camera 15/15, action 14/15,
    environment 14/15, lighting 10/12 judged (3 clips show no ball), timing 11/15 (two first
    contacts are with a wall the pan has taken out of the frame, one is missed, one spurious break
    comes first). The 200-clip ceiling, through H.264: experiments/adherence_ceiling.md."""
    rows = [judge(claims, m) for _, claims, m in rendered]
    score = aggregate(rows)
    for layer in ("subject", "action", "environment", "camera"):
        assert score[layer]["score"] >= 0.9, (layer, score[layer])
    assert score["timing"]["score"] >= 0.7
    assert score["lighting"]["n"] >= 10 and score["lighting"]["score"] >= 0.75
    # the pieces of the subject test on their own
    for clip, claims, m in rendered:
        assert m.count == len(clip.annotations["objects"])
        assert sorted(m.present) == sorted(o.color_name for o in claims.objects)


def test_camera_registration_recovers_a_known_pan_and_zoom():
    rng = np.random.default_rng(0)
    from scipy import ndimage
    wall = ndimage.gaussian_filter(rng.uniform(60, 200, (96, 96)), 1.2)
    T, zoom_rate, pan = 13, 0.02, 0.6                  # per frame: ln zoom, pixels to the right
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    frames = []
    for t in range(T):
        z = np.exp(zoom_rate * t)
        # frame t shows the wall point x0 at 32 + z (x0 - 32) + pan t
        x0, y0 = (xx - 32 - pan * t) / z + 32, (yy - 32) / z + 32
        frames.append(ndimage.map_coordinates(wall, [y0 + 16 - 0.5, x0 + 16 - 0.5], order=3))
    frames = np.repeat(np.clip(np.stack(frames), 0, 255).astype(np.uint8)[..., None], 3, -1)
    cam = estimate_camera(frames)
    assert abs(cam.total_log_zoom - zoom_rate * (T - 1)) < 0.01
    assert abs(cam.shift[-1, 0] - pan * (T - 1)) < 0.3 and abs(cam.shift[-1, 1]) < 0.3
    assert cam.motion(AdherenceConfig()) == "zoom_in"


def test_background_model_flags_tinted_wall_speckle_but_not_objects():
    """A dark violet wall panning right under the camera, with a wall-tinted bluish speckle fixed
    to the wall, a red ball flying across and a green box resting on the wall's floor all clip long:
    the modelled wall is the wall where the ball passes, the speckle is wall, the ball and the
    resting box (which the median takes for wall) are not, and only the speckle's blob is dropped."""
    rng = np.random.default_rng(1)
    from scipy import ndimage
    T, H, W, pan = 20, 48, 48, 0.5
    wall = np.array([30.0, 28.0, 40.0]) * (1 + 0.15 * ndimage.gaussian_filter(rng.standard_normal((H, W + 24)), 2.0)
                                           )[..., None]
    wall[20:23, 30:33] = (40, 36, 72)            # speckle, in wall coordinates
    wall[38:44, 8:14] = (30, 200, 40)            # resting box
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    frames, balls = [], []
    for t in range(T):
        # frame t shows the wall point x0 at x0 + pan t (the scene moves right)
        f = np.stack([ndimage.map_coordinates(wall[..., c], [yy - 0.5, xx - pan * t - 0.5 + 12], order=1)
                      for c in range(3)], -1)
        ball = (xx - (4 + 2 * t)) ** 2 + (yy - 10) ** 2 < 3.5 ** 2
        f[ball] = (220, 30, 30)
        frames.append(f), balls.append(ball)
    frames = np.clip(np.stack(frames), 0, 255).round().astype(np.uint8)
    cam = CameraEstimate(np.ones(T), np.stack([pan * np.arange(T), np.zeros(T)], -1), H, W)
    bg = background_model(frames, cam)
    t = 10
    assert np.abs(bg[t][balls[t]] - wall[9:12, 12:24].mean(axis=(0, 1))).max() < 12   # wall behind the ball
    cfg = AdherenceConfig()
    flagged = wall_pixels(frames, bg, cfg.background_rgb, cfg.background_chroma)[t]
    speckle = np.zeros((H, W), bool)
    speckle[21, 31 - 12 + int(round(pan * t))] = True
    box = (np.abs(frames[t].astype(int) - (30, 200, 40)).max(-1) < 10)
    assert flagged[speckle].all() and not flagged[balls[t]].any() and not flagged[box].any()
    blob = ndimage.binary_dilation(speckle)
    kept = drop_wall_blobs(blob | balls[t] | box, flagged, cfg.wall_blob_share)
    assert not kept[blob].any() and kept[balls[t]].all() and kept[box].all()

def test_mismatched_captions_score_lower(rendered):
    """The metric is not trivially 1: the same clips judged against a wrong camera sentence, or
    against the captions of other clips, lose the layers that differ."""
    true = aggregate([judge(claims, m) for _, claims, m in rendered])
    swapped = []
    for _, claims, m in rendered:   # static -> pan_left -> pan_right -> zoom_in -> zoom_out -> static
        wrong = CAMERA_MOTIONS[(CAMERA_MOTIONS.index(claims.camera) + 1) % len(CAMERA_MOTIONS)]
        swapped.append(judge(dataclasses.replace(claims, camera=wrong), m))
    assert aggregate(swapped)["camera"]["score"] <= 0.1 < true["camera"]["score"]
    others = [judge(rendered[(i + 4) % len(rendered)][1], m) for i, (_, _, m) in enumerate(rendered)]
    other = aggregate(others)
    assert other["subject"]["score"] <= 0.2 and other["all_layers"] < true["all_layers"] - 0.3
    assert other["timing"]["score"] < true["timing"]["score"]
    mean = lambda s: np.mean([s[k]["score"] for k in LAYERS if s[k]["n"]])  # noqa: E731
    assert mean(other) < mean(true) - 0.25


# ----------------------------------------------------------------------------- end to end
def test_ltx_eval_task_adherence_scores_a_generated_folder_and_shards(synthetic_shards, tmp_path):
    gen = tmp_path / "generated"
    gen.mkdir()
    for seed in (5, 21):
        clip = render_clip(seed)
        write_mp4(gen / f"{clip.key}.mp4", clip.frames, 24.0, clip.audio, 24000)
        (gen / f"{clip.key}.txt").write_text(clip.caption)

    def cfg(*overrides):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose("eval", overrides=[f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'out'}",
                                              "task=adherence", *overrides])

    report = evaluate(cfg(f"generated={gen}", f"shards={synthetic_shards}/val-*.tar"))
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [c["key"] for c in saved["generated"]["clips"]] == ["synth-21", "synth-5"]   # sorted by file name
    assert saved["real"]["summary"]["num_clips"] == 4
    for part in ("real", "generated"):
        s = report[part]["summary"]
        assert set(LAYERS) <= set(s) and all(0.0 <= s[k]["score"] <= 1.0 for k in LAYERS if s[k]["n"])
        row = saved[part]["clips"][0]
        assert set(row["layers"]) == set(LAYERS) and row["claims"]["objects"] and "camera" in row["measured"]
    assert report["generated"]["summary"]["subject"]["score"] == 1.0
    with pytest.raises(ConfigError, match="task=adherence needs generated"):
        evaluate(cfg())
    (gen / "synth-21.txt").unlink()
    with pytest.raises(FileNotFoundError, match="synth-21.mp4"):
        run(generated=str(gen))
