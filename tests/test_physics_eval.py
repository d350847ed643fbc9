"""Specification of the physics and audio-video sync evaluation (``ltx-eval task=physics``)."""
import io
import json
import tarfile

import numpy as np
import pytest

from ltx_train.data.captions import caption
from ltx_train.media import write_mp4
from ltx_train.data.synth import SynthConfig, render_clip
from ltx_train.data.synth_world import sample_scene
from ltx_train.eval.av_sync import detect_onsets, sync_errors_ms, sync_summary
from ltx_train.eval.physics import angle_deg, fit_motion, track_objects
from ltx_train.eval.physics_eval import (EvalClip, PhysicsSpec, aggregate, evaluate_clip, evaluate_clips, run,
                                         spec_from_annotations, spec_from_prompt)
from ltx_train.eval.prompts import parse_prompt

FPS, SR, SIZE = 24.0, 24000, 96
RED = (220, 40, 40)


def ballistic(t: np.ndarray, p0, v0, g, floor: float, e: float = 0.8):
    """Exact positions (len(t), 2) of a point bouncing on the line y = floor, and the contact times."""
    p, v, now, out, contacts = np.array(p0, float), np.array(v0, float), 0.0, [], []
    g = np.asarray(g, float)
    for target in t:
        while True:  # advance to the next bounce before ``target``, if any
            a, b, c = 0.5 * g[1], v[1], p[1] - floor
            disc = b * b - 4 * a * c
            hit = (-b + np.sqrt(disc)) / (2 * a) if disc >= 0 and a > 0 else np.inf
            if now + hit > target or hit <= 1e-12:
                break
            p, v, now = p + v * hit + 0.5 * g * hit ** 2, v + g * hit, now + hit
            v[1] = -e * v[1]
            contacts.append(now)
        dt = target - now
        out.append(p + v * dt + 0.5 * g * dt ** 2)
    return np.array(out), np.array(contacts)


def noisy_wall(rng: np.random.Generator) -> np.ndarray:
    """(SIZE, SIZE, 3) float: a grey-beige wall with strong per-pixel texture."""
    return (130 + 25 * rng.standard_normal((SIZE, SIZE, 1))).clip(0, 255) * np.array([1.0, 0.97, 0.9])


def draw_disc(wall: np.ndarray, centre, r: float = 0.07, color=RED) -> np.ndarray:
    """A Lambert-shaded, anti-aliased disc (light from the upper left) and its shadow on the wall."""
    cx, cy = centre
    yy, xx = (np.mgrid[0:SIZE, 0:SIZE] + 0.5) / SIZE
    img = wall.copy()
    img[((xx - cx - 0.03) ** 2 + (yy - cy - 0.02) ** 2) < r * r] *= 0.5
    nx, ny = (xx - cx) / r, (yy - cy) / r
    cover = np.clip((r - np.hypot(xx - cx, yy - cy)) * SIZE + 0.5, 0, 1)[..., None]
    nz = np.sqrt(np.clip(1 - nx ** 2 - ny ** 2, 0, 1))
    shade = np.clip(0.3 + 0.7 * (0.6 * nz - 0.5 * nx - 0.6 * ny), 0.1, 1.0)[..., None]
    return (img * (1 - cover) + cover * shade * np.array(color)).clip(0, 255).astype(np.uint8)


def disc_clip(seed: int = 0, num_frames: int = 48, g=(0.3, 3.0)):
    """A red disc bouncing on a floor over a noisy wall, with an impact sound at each bounce:
    (frames, audio, centres (T, 2) normalised, contact times, unit gravity)."""
    rng = np.random.default_rng(seed)
    centres, contacts = ballistic(np.arange(num_frames) / FPS, (0.6, 0.25), (-0.25, -0.5), g, floor=0.83)
    wall = noisy_wall(rng)
    frames = np.stack([draw_disc(wall, c) for c in centres])
    audio = 0.003 * rng.standard_normal(int(num_frames / FPS * SR))
    for tc in contacts:
        n0, k = int(np.ceil(tc * SR)), np.arange(2400)
        audio[n0:n0 + 2400] += (0.4 * np.sin(2 * np.pi * 700 * k / SR) * np.exp(-k / 300.0))[: len(audio) - n0]
    return frames, audio.astype(np.float32), centres, contacts, np.asarray(g) / np.linalg.norm(g)


# ----------------------------------------------------------------------------- tracking and fitting
def test_tracker_finds_a_shaded_disc_on_a_textured_wall_to_a_fraction_of_a_pixel():
    frames, _, centres, _, _ = disc_clip()
    track = track_objects(frames, [RED])[:, 0]
    assert np.isfinite(track).all()
    assert np.abs(track - centres).max() * SIZE < 0.5


def test_tracker_marks_an_absent_colour_and_a_disc_cut_by_the_frame_edge_as_missing():
    wall = noisy_wall(np.random.default_rng(0))
    frames = np.stack([draw_disc(wall, c) for c in [(0.5, 0.5), (0.52, 0.5), (0.02, 0.5), (0.56, 0.5)]])
    assert np.isnan(track_objects(frames, [(40, 80, 230)])).all()   # no blue object in the clip
    track = track_objects(frames, [RED])[:, 0]
    assert np.isnan(track[2]).all()                                 # half of it is off the left edge
    assert np.isfinite(track[[0, 1, 3]]).all()


def test_motion_fit_recovers_gravity_direction_and_sub_frame_bounce_instants():
    frames, _, _, contacts, g = disc_clip()
    fit = fit_motion(track_objects(frames, [RED])[:, 0], FPS, noise_floor=0.15 / SIZE)
    assert angle_deg(fit.accel, g) < 2.0
    assert fit.num_bounces == len(contacts) >= 1
    assert np.abs(fit.contact_times - contacts).max() < 0.25 / FPS


def test_a_wall_held_axis_does_not_count_as_zero_gravity():
    # tilted gravity: the object lands (clay: it stays on the floor) and slides under gravity's
    # horizontal part only; the floor holds y, so the long slide must not pull the fit horizontal
    g = np.array([2.0, 3.5])
    t = np.arange(60) / FPS
    land = 0.5
    p_land, v_land = 0.2 + 0.5 * g * land ** 2, g * land
    dt = t - land
    sliding = np.stack([p_land[0] + v_land[0] * dt + 0.5 * g[0] * dt ** 2, np.full_like(t, p_land[1])], 1)
    track = np.where((t < land)[:, None], 0.2 + 0.5 * g * t[:, None] ** 2, sliding)
    fit = fit_motion(track, FPS, noise_floor=0.001)
    assert fit.num_bounces == 1 and abs(fit.contact_times[0] - land) < 0.5 / FPS
    assert angle_deg(fit.accel, g) < 2.0


def test_a_still_object_gives_no_acceleration():
    fit = fit_motion(np.tile([[0.4, 0.6]], (30, 1)), FPS)
    assert np.isnan(fit.accel).all() and fit.num_bounces == 0


# ----------------------------------------------------------------------------- audio
def test_onsets_are_found_at_impact_times_over_room_noise():
    rng = np.random.default_rng(1)
    audio = 0.005 * rng.standard_normal(2 * SR)
    times = [0.2113, 0.7, 0.76, 1.5]                    # two impacts only 60 ms apart
    for t0, amp in zip(times, [0.5, 0.05, 0.3, 0.8]):   # one 20 dB quieter than the others
        n0, k = int(np.ceil(t0 * SR)), np.arange(3000)
        audio[n0:n0 + 3000] += amp * np.sin(2 * np.pi * 1200 * k / SR) * np.exp(-k / 600)
    onsets = detect_onsets(audio, SR)
    assert len(onsets) == len(times)
    assert np.abs(onsets - times).max() < 0.002


def test_sync_error_is_distance_to_nearest_onset_and_a_silent_clip_is_out_of_sync():
    errors = sync_errors_ms(np.array([0.5, 1.0]), np.array([0.51, 0.9, 2.0]))
    assert np.allclose(errors, [10.0, 100.0])
    summary = sync_summary(errors, fps=24.0)             # 2 frames = 83.3 ms
    assert summary["within_2_frames"] == 0.5 and summary["median_ms"] == pytest.approx(55.0)
    silent = sync_summary(sync_errors_ms(np.array([0.5]), np.zeros(0)), fps=24.0)
    assert silent["within_2_frames"] == 0.0


# ----------------------------------------------------------------------------- prompts
def test_prompt_parser_reads_every_physics_fact_of_generator_captions():
    cfg = SynthConfig(num_frames=49)
    for seed in range(60):
        scene = sample_scene(seed, cfg)
        contacts = sorted(({**c, "object": i} for i, tr in enumerate(scene.trajectories) for c in tr.contacts),
                          key=lambda c: (c["time"], c["object"]))
        facts = parse_prompt(caption(scene, contacts))
        assert [o.color for o in facts.objects] == [o.color for o in scene.objects]
        assert [o.material for o in facts.objects] == [o.material for o in scene.objects]
        assert facts.gravity_name == scene.gravity_name and facts.bounces == len(contacts)
        assert angle_deg(facts.gravity, scene.gravity) < 3.0   # tilt is stated to 5 degrees


def test_prompt_parser_accepts_loose_hand_written_prompts():
    facts = parse_prompt("A green sphere bounces three times while the camera pans to the left. "
                         "Gravity pulls upward.")
    assert facts.colors == ((40, 190, 60),) and facts.objects[0].shape == "ball"
    assert facts.gravity_name == "up" and facts.bounces == 3
    plain = spec_from_prompt("A blue box slides.")
    assert plain.expected_bounces is None and np.allclose(plain.gravity, [0, 1])  # unstated: everyday gravity


# ----------------------------------------------------------------------------- whole clips
def test_evaluate_clip_scores_a_physical_clip_as_physical():
    frames, audio, _, contacts, g = disc_clip()
    r = evaluate_clip(frames, audio, SR, FPS, PhysicsSpec([RED], g, expected_bounces=len(contacts)))
    assert not r["tracking_failed"] and r["angle_deg"] < 3.0 and r["bounce_error"] == 0
    assert r["sync"]["within_2_frames"] == 1.0 and r["sync"]["mean_ms"] < 10.0


def test_evaluate_clip_catches_wrong_gravity_and_late_sound():
    frames, audio, _, contacts, g = disc_clip()
    late = np.roll(audio, int(0.2 * SR))                 # every impact sound 200 ms (~5 frames) late
    r = evaluate_clip(frames, late, SR, FPS, PhysicsSpec([RED], np.array([0.0, -1.0]), len(contacts) + 2))
    assert r["angle_deg"] > 150.0 and r["bounce_error"] == -2
    assert r["sync"]["within_2_frames"] == 0.0


def test_aggregate_counts_unmeasurable_clips_as_failures():
    frames, audio, _, contacts, g = disc_clip(num_frames=30)
    ok = evaluate_clip(frames, audio, SR, FPS, PhysicsSpec([RED], g, len(contacts)))
    lost = evaluate_clip(frames, None, SR, FPS, PhysicsSpec([(40, 80, 230)], g, 1))   # colour not in clip
    s = aggregate([ok, lost])
    assert s["num_clips"] == 2 and s["tracking_failed"] == 1 and s["no_acceleration"] == 1
    assert s["within_15deg"] == 0.5 and s["clips_without_audio"] == 1
    assert s["bounce_mae"] == pytest.approx(0.5)


def test_ceiling_on_synthetic_world_clips_meets_the_design_targets():
    """The generator's own clips are what a perfect model would produce, so most must pass:
    fitted gravity within 15 degrees and impact sounds within 2 frames of visual contacts."""
    cfg = SynthConfig()    # the default dataset: 64x64, 25 frames at 24 fps
    clips = [render_clip(seed, cfg) for seed in range(16)]
    report = evaluate_clips(EvalClip(c.key, c.frames, c.audio, cfg.sample_rate, cfg.fps,
                                     spec_from_annotations(c.annotations), c.caption) for c in clips)
    s = report["summary"]
    assert s["within_15deg"] >= 0.85 and s["angle_deg"]["median"] < 5.0
    assert s["sync_within_2_frames"] >= 0.85 and s["num_visual_contacts"] >= 16
    assert s["audio_vs_truth_ms"]["median"] < 2.0      # the onset detector itself is near exact
    # judged against its own caption instead of its annotations, a clip scores the same angle
    c = clips[0]
    by_prompt = evaluate_clip(c.frames, c.audio, cfg.sample_rate, cfg.fps, spec_from_prompt(c.caption))
    assert abs(by_prompt["angle_deg"] - report["clips"][0]["angle_deg"]) < 3.0


def _tar(path, samples: list[dict]) -> None:
    with tarfile.open(path, "w") as tar:
        for s in samples:
            for ext, data in s.items():
                if ext != "__key__":
                    info = tarfile.TarInfo(f"{s['__key__']}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def test_shards_and_generated_folders_are_read_and_reported_as_json(tmp_path):
    cfg = SynthConfig()
    samples, gen = [], tmp_path / "generated"
    gen.mkdir()
    for seed in (3, 5):
        c = render_clip(seed, cfg)
        write_mp4(gen / f"{c.key}.mp4", c.frames, cfg.fps, c.audio, cfg.sample_rate)
        (gen / f"{c.key}.txt").write_text(c.caption)
        samples.append({"__key__": c.key, "mp4": (gen / f"{c.key}.mp4").read_bytes(),
                        "txt": c.caption.encode(), "json": json.dumps(c.annotations).encode()})
    good = samples[0]
    samples += [{"__key__": "user-clip", "mp4": good["mp4"], "txt": b"no labels"},         # nothing to judge
                {**good, "__key__": "truncated", "mp4": good["mp4"][: len(good["mp4"]) // 3]},  # broken: skipped
                {**good, "__key__": "badjson", "json": b'{"gravity": [0, 1], '}]
    _tar(tmp_path / "val-000000.tar", samples)
    with pytest.warns(UserWarning):
        report = run(shards=[str(tmp_path / "val-000000.tar")], generated=str(gen), out=str(tmp_path / "r.json"))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [c["key"] for c in saved["real"]["clips"]] == ["synth-3", "synth-5"]
    assert [c["key"] for c in saved["generated"]["clips"]] == ["synth-3", "synth-5"]
    # AAC round trip keeps audio aligned with the frames: onsets still at the annotated instants
    assert report["real"]["summary"]["audio_vs_truth_ms"]["median"] < 2.0
    for part in ("real", "generated"):
        assert report[part]["summary"]["within_15deg"] == 1.0
