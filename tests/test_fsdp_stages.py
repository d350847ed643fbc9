"""FSDP2 for the pixel stages on CPU: the video VAE (with its GAN discriminator), the audio VAE and the
vocoder (generator + discriminators, two optimisers, or one with ``gan_update=simultaneous``) train under `trainer=fsdp_cpu` (two gloo processes,
`parallelize.shard_stage`) as they do under data parallel: the same weights, the same validation scores
(every rank runs the same number of val batches, or the sharded forward would hang), one full
checkpoint, and a resume on one process from it."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from test_ddp import logged, run_ok

STAGES = {   # each with its second optimiser in use from its first steps
    "vae": (["experiment=vae_tiny", "model.gan_weight=0.1", "model.gan_start_step=1",
             "trainer.gradient_clip_val=null"], 6, "val/psnr"),
    "audio_vae": (["experiment=audio_vae_tiny"], 4, "val/mel_l1"),
    "vocoder": (["experiment=vocoder_tiny", "model.disc_start_step=1"], 6, "val/mel_l1"),
    # one optimiser, one backward: the discriminators frozen for the generator's loss under FSDP2 too
    "vocoder_simultaneous": (["experiment=vocoder_tiny", "model.disc_start_step=1", "model.gan_update=simultaneous"],
                             4, "val/mel_l1"),
}


def ltx_train(run: Path, shards: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ltx_train.train", f"data.train_shards={shards}/train-*.tar",
            f"data.val_shards={shards}/val-*.tar", "data.batch_size=2", "trainer.enable_progress_bar=false",
            "trainer.limit_val_batches=2", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1",
            f"hydra.run.dir={run}", "logger=csv", *extra]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_pixel_stage_trains_under_fsdp_as_under_ddp(stage, synthetic_shards, tmp_path):
    extra, steps, metric = STAGES[stage]
    fsdp, ddp = tmp_path / "fsdp", tmp_path / "ddp"
    for run, trainer in ((fsdp, "trainer=fsdp_cpu"), (ddp, "trainer=ddp_cpu")):
        run_ok(ltx_train(run, synthetic_shards, trainer, *extra, f"trainer.max_steps={steps}"))
    a = torch.load(fsdp / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(ddp / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] >= steps   # (Lightning counts both optimisers' steps)
    assert set(a["state_dict"]) == set(b["state_dict"]) and a["state_dict"]
    for k, v in a["state_dict"].items():       # one full file, gathered: plain tensors, DDP's values
        assert not hasattr(v, "full_tensor") and v.shape == b["state_dict"][k].shape, k
        # atol 5e-5: Adam steps of ~lr (1e-3) turn reduction-order rounding into up to 1.2e-5 (measured, the VAE)
        torch.testing.assert_close(v, b["state_dict"][k], rtol=1e-4, atol=5e-5, msg=k)
    assert len(a["optimizer_states"]) == len(b["optimizer_states"]) == (2 if stage in ("vae", "vocoder") else 1)
    # both ranks validated the same number of batches (else the gathers hang) on the same clips as DDP
    assert logged(fsdp, metric)[-1] == pytest.approx(logged(ddp, metric)[-1], rel=1e-3)

    if stage == "vocoder":   # two optimisers and their schedules restored on one process
        run = tmp_path / "resumed"
        shutil.copytree(fsdp, run)
        run_ok(ltx_train(run, synthetic_shards, "trainer=cpu", *extra, f"trainer.max_steps={a['global_step'] + 2}",
                         f"ckpt_path={run}/checkpoints/last.ckpt"))
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == a["global_step"] + 2


def test_validation_on_several_ranks_splits_samples_evenly(synthetic_shards):
    """One val shard, two ranks: split by shard, rank 1 would get nothing (and a sharded forward on rank 0
    would wait for it); split by sample, each reader gets the same number of clips, disjoint."""
    from ltx_train.data.datamodule import VideoDataModule

    keys = {}
    for rank in (0, 1):
        dm = VideoDataModule(val_shards=f"{synthetic_shards}/val-*.tar", batch_size=1, val_batch_size=1,
                             num_workers=0)
        dm._rank_world = lambda rank=rank: (rank, 2)
        dm.setup("validate")
        keys[rank] = [k for batch in dm.val_dataloader() for k in batch["key"]]
    assert len(keys[0]) == len(keys[1]) == 2          # 4 val clips over 2 readers
    assert not set(keys[0]) & set(keys[1])
