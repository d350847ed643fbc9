"""Specification of the image-to-video evaluation (``ltx-eval task=i2v``, ltx_train/eval/i2v.py).

"Generated" folders are written here as ``ltx-generate from_shards=...`` writes them (``NN_<slug>.mp4`` +
``.txt`` + ``prompts.json`` with the source key, url and clip geometry), from the first two held-out
clips of ``synthetic_shards`` (64x64, 25 frames): copies of the real 17-frame continuation, the first
frame frozen, and noise. The sources are cut straight from the tar here (the centred 17 of 25 frames, at
the shards' own size: no resize), independently of the decode path the evaluation uses.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from ltx_train.config import ConfigError
from ltx_train.data.shardlist import resolve_shards
from ltx_train.eval.i2v import CURVES, PLOT, PSNR_CAP_DB, PairingError, run
from ltx_train.eval.physics_eval import _jsonable, read_shard_samples, run as physics_run
from ltx_train.evaluate import evaluate
from ltx_train.generate import slug
from ltx_train.hydra_utils import CONF_DIR, register_resolvers
from ltx_train.media import read_video, write_mp4

register_resolvers()
GEOMETRY = {"num_frames": 17, "fps": 24.0, "height": 64, "width": 64}
SUMMARY_KEYS = {"num_clips", "first_frame_psnr", "first_frame_ssim", "frames", "mean_after_frame_0", "physics",
                *(f"{c}_{m}" for c in CURVES for m in ("psnr", "ssim"))}


@pytest.fixture(scope="module")
def shards(synthetic_shards) -> str:
    return f"{synthetic_shards}/val-*.tar"


@pytest.fixture(scope="module")
def sources(synthetic_shards) -> list[dict]:
    """The first two val clips: key, url, caption, the centred 17 of their 25 frames, and their audio."""
    shard = sorted(synthetic_shards.glob("val-*.tar"))[0]
    out = []
    for s in list(read_shard_samples(shard))[:2]:
        frames = read_video(s["mp4"])
        assert len(frames) == 25 and frames.shape[1:3] == (64, 64)
        start = (25 - GEOMETRY["num_frames"]) // 2   # the validation decode's centred clip
        out.append({"key": s["__key__"], "url": str(shard), "caption": s["txt"].decode().strip(),
                    "frames": frames[start:start + GEOMETRY["num_frames"]]})
    return out


def write_generated(folder, sources, make, **record) -> str:
    """A folder as ltx-generate from_shards writes it; ``make(frames) -> frames``; ``record``: manifest overrides."""
    folder.mkdir(parents=True)
    records = []
    for i, s in enumerate(sources):
        name = f"{i:02d}_{slug(s['caption'])}.mp4"
        write_mp4(folder / name, make(s["frames"]), GEOMETRY["fps"])
        (folder / name).with_suffix(".txt").write_text(s["caption"], encoding="utf-8")
        records.append({"file": name, "prompt": s["caption"], "seed": 0, "image_to_video": True, "key": s["key"],
                        "url": s["url"], **GEOMETRY, **record})
    (folder / "prompts.json").write_text(json.dumps(records, indent=2))
    return str(folder)


@pytest.fixture(scope="module")
def folders(sources, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("generated")
    rng = np.random.default_rng(0)
    makers = {"copy": lambda f: f.copy(), "frozen": lambda f: np.repeat(f[:1], len(f), axis=0),
              "noise": lambda f: rng.integers(0, 256, f.shape, dtype=np.uint8)}
    return {name: write_generated(root / name, sources, make) for name, make in makers.items()}


@pytest.fixture(scope="module")
def reports(folders, shards, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("reports")
    return {name: run(shards, folder, None, str(out / name / "report.json"), plot=name == "copy")
            for name, folder in folders.items()}


# ----------------------------------------------------------------------------- the measures
def test_copies_frozen_clips_and_noise_score_in_order(reports):
    copy, frozen, noise = (reports[n]["summary"] for n in ("copy", "frozen", "noise"))
    after = {n: reports[n]["summary"]["mean_after_frame_0"] for n in reports}
    curves = {n: reports[n]["curves"] for n in reports}
    # first frame: a copy is the input image up to H.264 (~38.7 dB measured), noise is nowhere near
    assert copy["first_frame_psnr"] >= 35.0 and copy["first_frame_ssim"] >= 0.95
    assert frozen["first_frame_psnr"] >= 35.0
    assert noise["first_frame_psnr"] < 15.0 and noise["first_frame_ssim"] < 0.1
    # a copy stays on the real continuation at every frame, and drifts from the input as the real clip does
    assert min(curves["copy"]["vs_real"]["psnr"]) >= 33.0 and after["copy"]["vs_real_psnr"] >= 35.0
    assert abs(after["copy"]["vs_input_psnr"] - after["copy"]["real_vs_input_psnr"]) < 1.5
    # the real reference: frame 0 is the input (the cap), later frames move away from it
    ref = curves["copy"]["real_vs_input"]["psnr"]
    assert ref[0] == PSNR_CAP_DB and ref[-1] < ref[1] < 35.0 and curves["copy"]["real_vs_input"]["ssim"][0] == 1.0
    assert all(curves[n]["real_vs_input"] == curves["copy"]["real_vs_input"] for n in reports)   # same sources
    # a frozen clip keeps the input image (vs_input high at every frame) but leaves the real continuation
    assert min(curves["frozen"]["vs_input"]["psnr"]) >= 35.0
    assert after["frozen"]["vs_real_psnr"] < after["copy"]["vs_real_psnr"] - 10.0
    assert curves["frozen"]["vs_real"]["psnr"][-1] < curves["copy"]["vs_real"]["psnr"][-1] - 10.0
    assert after["frozen"]["vs_input_psnr"] > after["copy"]["vs_input_psnr"] + 10.0
    # noise: low against both references at every frame
    assert max(curves["noise"]["vs_input"]["psnr"] + curves["noise"]["vs_real"]["psnr"]) < 15.0


def test_report_holds_summary_curves_clips_the_physics_report_and_a_plot(reports, folders, sources, shards):
    report = reports["copy"]
    plot = Path(report["plot"])
    assert plot.name == PLOT and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert reports["frozen"]["plot"] is None   # plot=False
    saved = json.loads((plot.parent / "report.json").read_text())   # strict JSON (NaN -> null)
    assert set(saved) == {"summary", "curves", "clips", "physics", "psnr_cap_db", "plot"}
    assert set(saved["summary"]) == SUMMARY_KEYS and saved["summary"]["num_clips"] == 2
    assert saved["summary"]["frames"] == [0, 1, 4, 8, 16] and saved["curves"]["frames"] == list(range(17))
    for c in CURVES:
        assert len(saved["curves"][c]["psnr"]) == len(saved["curves"][c]["ssim"]) == 17
        assert saved["summary"][f"{c}_psnr"] == [saved["curves"][c]["psnr"][k] for k in (0, 1, 4, 8, 16)]
    assert [c["key"] for c in saved["clips"]] == [s["key"] for s in sources]
    clip = saved["clips"][0]
    assert set(clip) == {"file", "key", "url", "prompt", "num_frames", "fps", "size", "first_frame_psnr",
                         "first_frame_ssim", "curves"}
    assert clip["size"] == [64, 64] and clip["num_frames"] == 17 and clip["url"] == sources[0]["url"]
    assert clip["first_frame_psnr"] == clip["curves"]["vs_input"]["psnr"][0] == clip["curves"]["vs_real"]["psnr"][0]
    # the physics part is ltx-eval task=physics's report of the same inputs, its summaries in the summary
    assert saved["physics"] == _jsonable(physics_run(resolve_shards(shards, "val"), folders["copy"], None))
    assert saved["summary"]["physics"] == {k: v["summary"] for k, v in saved["physics"].items()}
    assert saved["summary"]["physics"]["generated"]["num_clips"] == 2


# ----------------------------------------------------------------------------- errors
def test_missing_or_empty_folders_and_unmatched_clips_are_named(folders, shards, tmp_path):
    copy = folders["copy"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        run(shards, str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.mp4 in"):
        run(shards, str(tmp_path / "empty"))
    bare = tmp_path / "bare"
    shutil.copytree(copy, bare)
    (bare / "prompts.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no prompts.json"):
        run(shards, str(bare))

    def edited(name, edit):
        d = tmp_path / name
        shutil.copytree(copy, d)
        records = json.loads((d / "prompts.json").read_text())
        edit(records)
        (d / "prompts.json").write_text(json.dumps(records))
        return d, records

    d, records = edited("extra", lambda r: r.pop())
    unlisted = sorted(d.glob("*.mp4"))[-1].name
    with pytest.raises(PairingError, match=rf"{unlisted}: no record in"):
        run(shards, str(d))
    d, _ = edited("text", lambda r: [x.pop("key") for x in r])   # text-prompt generations: no source
    with pytest.raises(PairingError, match="names no source clip"):
        run(shards, str(d))
    d, records = edited("unknown", lambda r: r[1].update(key="synth-gone"))
    with pytest.raises(PairingError, match=rf"{records[1]['file']}: its source clip 'synth-gone'"):
        run(shards, str(d))
    d, records = edited("small", lambda r: [x.update(height=32, width=32) for x in r])
    with pytest.raises(PairingError, match=rf"{records[0]['file']} is 64x64 but its source '{records[0]['key']}'.*"
                                           r"32x32; task=i2v does not resize"):
        run(shards, str(d))
    d, records = edited("long", lambda r: [x.update(num_frames=25) for x in r])
    with pytest.raises(PairingError, match=rf"{records[0]['file']} has 17 frames but its source"):
        run(shards, str(d))


# ----------------------------------------------------------------------------- ltx-eval
def _eval_cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("eval", overrides=[f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'out'}",
                                          "task=i2v", *overrides])


def test_ltx_eval_task_i2v_writes_the_report_and_prints_the_summary(folders, shards, tmp_path, capsys):
    report = evaluate(_eval_cfg(tmp_path, f"generated={folders['copy']}", f"shards={shards}", "limit=1"))
    printed = capsys.readouterr().out
    assert f"[ltx-eval] task=i2v report: {tmp_path / 'out' / 'report.json'}" in printed
    assert '"first_frame_psnr"' in printed and '"vs_real_psnr"' in printed and '"physics"' in printed
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["summary"]["num_clips"] == 1 and report["summary"]["first_frame_psnr"] >= 35.0
    assert (tmp_path / "out" / PLOT).is_file()
    with pytest.raises(ConfigError, match="task=i2v needs generated=.* and shards="):
        evaluate(_eval_cfg(tmp_path, f"generated={folders['copy']}"))
    with pytest.raises(ConfigError, match="generated: no such folder"):
        evaluate(_eval_cfg(tmp_path, f"generated={tmp_path}/nowhere", f"shards={shards}"))


def test_ltx_generate_from_shards_then_ltx_eval_task_i2v(tiny_base_dir, shards, tmp_path):
    """End to end on a tiny random model: what ltx-generate writes is what task=i2v pairs."""
    from ltx_train.generate import generate
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("generate", overrides=[f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'gen'}",
                                             f"out_dir={tmp_path / 'gen'}", f"pretrained={tiny_base_dir}",
                                             f"from_shards={shards}", "limit=2", "steps=2", "seconds=0.4",
                                             "height=32", "width=32", "device=cpu"])
    paths = generate(cfg)
    records = json.loads((tmp_path / "gen" / "prompts.json").read_text())
    assert len(paths) == 2 and all(r["height"] == r["width"] == 32 and r["fps"] == 24.0 for r in records)
    report = evaluate(_eval_cfg(tmp_path, f"generated={tmp_path / 'gen'}", f"shards={shards}", "plot=false"))
    assert [c["key"] for c in report["clips"]] == [r["key"] for r in records]
    assert all(c["num_frames"] == r["num_frames"] == len(read_video(p)) and c["size"] == [32, 32]
               for c, r, p in zip(report["clips"], records, paths))
    assert np.isfinite(report["summary"]["first_frame_psnr"]) and report["plot"] is None
    assert report["physics"]["generated"]["summary"]["num_clips"] == 2
