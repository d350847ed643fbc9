"""Exact resume, per stage, in-process through ``ltx_train.train.train``: a run resumed from a mid-run
checkpoint logs the same loss, value for value, and ends with the same weights, EMA, latent statistics,
optimiser states and schedules as the uninterrupted run (CPU, fp32). The VAE and the DiT are also
killed and resumed in subprocesses in test_faults.py."""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest
import torch

from test_entrypoints import cfg_for
from test_lora_training import base_dir  # noqa: F401 - the tiny pretrained base (a fixture)
from ltx_train.train import train

TINY = ["data.height=32", "data.width=32", "data.num_frames=9", "data.batch_size=2", "data.shuffle_buffer=4",
        "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        "callbacks.model_checkpoint.keep_last=10"]
STAGES = {  # experiment, overrides, global steps, checkpoint to resume from
    "audio_vae": ("audio_vae_tiny", ["trainer.val_check_interval=2"], 6, "step000002.ckpt"),
    # two optimisers from the first batch (2 global steps per batch), GAN losses included
    "vocoder": ("vocoder_tiny", ["trainer.val_check_interval=2", "model.disc_start_step=0", "model.segment_frames=8"],
                8, "step000004.ckpt"),
    # one optimiser over G and D (gan_update=simultaneous), resumed before the discriminators start
    "vocoder_simultaneous": ("vocoder_tiny", ["trainer.val_check_interval=2", "model.disc_start_step=3",
                                              "model.segment_frames=8", "model.gan_update=simultaneous"],
                             6, "step000002.ckpt"),
    "vae_gan": ("vae_tiny", ["trainer.val_check_interval=2", "model.gan_weight=0.1", "model.gan_start_step=1",
                             "+model.disc_channels=8", "+model.disc_layers=2", "trainer.gradient_clip_val=null",
                             "callbacks.model_checkpoint.every_n_train_steps=1"],
                7, "step000003.ckpt"),
    # two DataLoader workers (3 batches each per epoch), resumed after 3 batches (0, 1, 0): worker 1 is next
    "vae_workers": ("vae_tiny", ["data.num_workers=2", "+data.epoch_size=12", "trainer.val_check_interval=2", "~callbacks.reconstruction_videos",
                                 "callbacks.model_checkpoint.every_n_train_steps=1"], 6, "step000003.ckpt"),
    # caption dropout (python), noise, timesteps and first-frame conditioning (torch), an EMA, latent
    # statistics measured on the first batch; resumed after step 3, then validation + samples at step 4
    "dit": ("dit_tiny", ["trainer.val_check_interval=2", "callbacks.model_checkpoint.every_n_train_steps=1",
                         "callbacks.sample_videos.steps=2", "model.caption_dropout=0.5", "model.first_frame_prob=0.5"],
            5, "step000003.ckpt"),
    # adapter-only checkpoints (+ EMA); the base and its latent statistics come back from `base`
    "lora": ("lora_style", ["trainer.val_check_interval=2", "callbacks.model_checkpoint.every_n_train_steps=1",
                            "callbacks.sample_videos.steps=2", "model.lora.rank=4", "model.warmup_steps=1",
                            "model.lr=1e-2", "model.ema_decay=0.9", "model.caption_dropout=0.5",
                            "model.first_frame_prob=0.5"], 5, "step000003.ckpt"),
}
NEEDS = {"dit": "frozen_vaes", "lora": "lora_base"}  # stage -> fixture giving more overrides


@pytest.fixture(scope="module")
def frozen_vaes(synthetic_shards, tmp_path_factory) -> list[str]:
    """One-step video VAE and audio VAE runs: the DiT's frozen encoders."""
    root, out = tmp_path_factory.mktemp("vaes"), []
    for name, key, *more in (("vae_tiny", "vae_checkpoint", "~callbacks.reconstruction_videos"),
                             ("audio_vae_tiny", "audio_vae_checkpoint")):
        train(cfg_for("train", root / name, synthetic_shards, f"experiment={name}", "trainer.max_steps=1",
                      "trainer.val_check_interval=1", *TINY, *more))
        out.append(f"model.{key}={root / name / 'checkpoints' / 'last.ckpt'}")
    return out


@pytest.fixture(scope="module")
def lora_base(base_dir) -> list[str]:  # noqa: F811
    return [f"base={base_dir}"]


def losses(run: Path) -> dict[int, dict[str, float]]:
    """step -> the train/* values of the last row logged for that step (a resumed run repeats steps)."""
    out: dict[int, dict[str, float]] = {}
    for row in csv.DictReader(open(run / "csv" / "version_0" / "metrics.csv")):
        vals = {k: float(v) for k, v in row.items() if k.startswith("train/") and v}
        if vals:
            out.setdefault(int(row["step"]), {}).update(vals)
    return out


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_resumed_run_equals_the_uninterrupted_one(stage, synthetic_shards, tmp_path, request):
    experiment, extra, steps, ckpt = STAGES[stage]
    extra = [*extra, *(request.getfixturevalue(NEEDS[stage]) if stage in NEEDS else [])]
    args = [f"experiment={experiment}", f"trainer.max_steps={steps}", *TINY, *extra]
    full, part = tmp_path / "full", tmp_path / "part"
    train(cfg_for("train", full, synthetic_shards, *args))
    # the interrupted run: only its checkpoint survives (no log), resumed in place
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / ckpt, part / "checkpoints" / ckpt)
    train(cfg_for("train", tmp_path / "elsewhere", synthetic_shards, *args,
                  f"ckpt_path={part / 'checkpoints' / ckpt}"))
    assert (part / "csv").is_dir() and not (tmp_path / "elsewhere" / "csv").exists()  # resumed in place
    a, b = losses(full), losses(part)
    assert b and set(b) < set(a) and min(b) > 0
    for step in b:
        # (Lightning drops what a manual module logs before its last optimiser step in the first batch of a
        # fit: the vocoder's D-step values, in the uninterrupted run's step 0 as in the resumed run's first)
        assert "train/loss" in b[step] and b[step].items() <= a[step].items(), \
            f"{stage}: step {step} differs: {a[step]} vs {b[step]}"
    end_a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    end_b = torch.load(part / "checkpoints" / "last.ckpt", weights_only=True)
    assert end_a["global_step"] == end_b["global_step"] == steps
    assert end_a["state_dict"].keys() == end_b["state_dict"].keys()
    for k, v in end_a["state_dict"].items():
        assert torch.equal(v, end_b["state_dict"][k]), k
    if "ema.num_updates" in end_a["state_dict"]:  # every step's update is in the checkpoint of that step
        assert int(end_b["state_dict"]["ema.num_updates"]) == steps
    if "stats_ready" in end_a["state_dict"]:
        assert bool(end_b["state_dict"]["stats_ready"])
    for oa, ob in zip(end_a["optimizer_states"], end_b["optimizer_states"]):
        for sa, sb in zip(oa["state"].values(), ob["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert end_a["lr_schedulers"] == end_b["lr_schedulers"]
    assert end_b["ltx_train"]["config"]["model"]["_target_"].startswith("ltx_train.modules.")
    assert len(end_b["ltx_train"]["git"]["commit"]) == 40


def test_a_lora_resume_refuses_another_base_or_a_different_adapter(lora_base, base_dir, synthetic_shards,  # noqa: F811
                                                                   tmp_path):
    from ltx_train.config import ConfigError

    args = ["experiment=lora_style", "trainer.max_steps=1", "model.lora.rank=4", "model.ema_decay=0.9",
            "~callbacks.sample_videos", *TINY, "trainer.val_check_interval=1"]
    train(cfg_for("train", tmp_path / "run", synthetic_shards, *args, *lora_base))
    ckpt = f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"
    other = shutil.copytree(base_dir, tmp_path / "other_base")  # the same weights at another path
    refusal = re.escape(f"trained on base={base_dir.resolve()}, but this run has base={other}")
    with pytest.raises(ConfigError, match=refusal):
        train(cfg_for("train", tmp_path / "b", synthetic_shards, *args, f"base={other}", ckpt))
    # strict_loading=False alone would drop the checkpoint's EMA averages without a word
    with pytest.raises(ConfigError, match=r"trained tensors not in this model, e.g. 'ema\."):
        train(cfg_for("train", tmp_path / "c", synthetic_shards, *args, *lora_base, "model.ema_decay=0", ckpt))


def test_the_dit_checkpoint_holds_the_ema_of_its_step_and_a_skipped_step_moves_none(frozen_vaes, synthetic_shards,
                                                                                    tmp_path):
    # the 4th batch is NaN, its step skipped (physics off: the hook's NaN fps would not make an annotation)
    args = ["experiment=dit_tiny", "trainer.max_steps=4", "~callbacks.sample_videos", *TINY, *frozen_vaes,
            "trainer.val_check_interval=1", "+callbacks.poison._target_=fault_hooks.PoisonBatches",
            "+callbacks.poison.start=3", "model.physics.enabled=false"]
    train(cfg_for("train", tmp_path, synthetic_shards, *args))
    ckpts = tmp_path / "checkpoints"
    # the count (the decay's warm-up) advances on the skipped step, as the LR schedule does; the averages do not
    for step, updates in ((2, 2), (3, 3), (4, 4)):
        sd = torch.load(ckpts / f"step{step:06d}.ckpt", weights_only=True)["state_dict"]
        assert int(sd["ema.num_updates"]) == updates, step
    before, after = (torch.load(ckpts / f"step{s:06d}.ckpt", weights_only=True)["state_dict"] for s in (3, 4))
    assert all(torch.equal(before[k], after[k]) for k in before
               if k.startswith(("ema.", "model.")) and k != "ema.num_updates")
