"""``ltx-eval task=vae videos=<folder>``: every video of the folder is scored, and when none can be,
the error says why (how many samples were skipped, for what)."""
from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from ltx_train.config import ConfigError
from ltx_train.evaluate import evaluate
from ltx_train.hydra_utils import CONF_DIR, register_resolvers
from ltx_train.media import write_mp4

register_resolvers()


@pytest.fixture(scope="module")
def vae_ckpt(tmp_path_factory):
    """An untrained tiny VAEModule checkpoint: scoring needs a model, not a good one."""
    from ltx_train.modules.vae_module import VAEModule

    torch.manual_seed(0)
    module = VAEModule({"preset": "tiny", "latent_channels": 8})
    path = tmp_path_factory.mktemp("vae") / "vae.ckpt"
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__}
    module.on_save_checkpoint(ckpt)  # records the architecture, as Lightning's save does
    torch.save(ckpt, path)
    return path


def folder_of(tmp_path, lengths: dict[str, int]):
    d = tmp_path / "videos"
    d.mkdir()
    for i, (name, n) in enumerate(lengths.items()):
        frames = np.full((n, 32, 32, 3), 40 * i + 20, np.uint8)
        frames[:, :, : 4 + 2 * i] = 200  # a bar whose width tells the videos apart
        write_mp4(d / f"{name}.mp4", frames, 24.0)
        (d / f"{name}.txt").write_text(f"video {name}")
    return d


def run_eval(tmp_path, ckpt, folder, *extra):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=[f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'out'}",
                                         "task=vae", f"checkpoint={ckpt}", f"videos={folder}", "max_save=0",
                                         "device=cpu", *extra])
    return evaluate(cfg)


def test_every_video_of_the_folder_is_scored(tmp_path, vae_ckpt):
    folder = folder_of(tmp_path, {"a": 25, "b": 30, "c": 25})
    report = run_eval(tmp_path, vae_ckpt, folder, "limit=2")  # limit caps shards, never a folder's videos
    assert report["num_clips"] == 3
    assert sorted(c["key"] for c in report["clips"]) == ["a", "b", "c"]
    assert "skipped" not in report
    assert json.loads((tmp_path / "out" / "report.json").read_text())["num_clips"] == 3


def test_a_video_too_short_for_the_clip_is_listed_as_skipped(tmp_path, vae_ckpt):
    folder = folder_of(tmp_path, {"a": 25, "short": 24, "c": 25})
    with pytest.warns(UserWarning, match="short"):
        report = run_eval(tmp_path, vae_ckpt, folder)
    assert sorted(c["key"] for c in report["clips"]) == ["a", "c"]
    assert [s["key"] for s in report["skipped"]] == ["short"]
    assert "the clip needs 25" in report["skipped"][0]["reason"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["skipped"] == report["skipped"]


def test_no_decodable_clip_says_how_many_were_skipped_and_why(tmp_path, vae_ckpt):
    folder = folder_of(tmp_path, {"a": 24, "b": 24, "c": 12})
    with pytest.warns(UserWarning), pytest.raises(ConfigError) as err:
        run_eval(tmp_path, vae_ckpt, folder)
    msg = str(err.value)
    assert "data.num_frames=25 frames at data.fps=24.0" in msg and "3 samples skipped" in msg
    assert "video has 24 frames but the clip needs 25 (2: a, b)" in msg
    assert "video has 12 frames but the clip needs 25 (1: c)" in msg
