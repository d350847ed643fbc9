"""FSDP2 on CPU: `ltx-train ... trainer=fsdp_cpu` starts two processes (gloo) whose model, gradients,
optimiser states and EMA are sharded per block (ltx_train/parallelize.py). The tiny DiT trains from a
latent cache and the test checks that sharding changes nothing but the memory: the same weights and
EMA as data parallel, one full checkpoint that exports, and a resume on another number of processes."""
from __future__ import annotations

import shutil

import torch

from test_ddp import ltx_train, ranks, run_ok


def state(ckpt) -> dict:
    return torch.load(ckpt, weights_only=True)


def test_fsdp_trains_like_ddp_and_its_checkpoint_exports_and_moves(latent_cache, tmp_path):
    steps = ["data.batch_size=2", "trainer.max_steps=4"]
    fsdp, ddp = tmp_path / "fsdp", tmp_path / "ddp"
    run_ok(ltx_train(fsdp, latent_cache, "trainer=fsdp_cpu", *steps))
    run_ok(ltx_train(ddp, latent_cache, "trainer=ddp_cpu", *steps))
    f0, f1 = ranks(fsdp, 2)
    d0, d1 = ranks(ddp, 2)
    assert f0["weights"] == f1["weights"]          # the gathered weights: one model
    assert [b["keys"] for b in f0["batches"]] == [b["keys"] for b in d0["batches"]]
    assert [b["keys"] for b in f1["batches"]] == [b["keys"] for b in d1["batches"]]
    torch.testing.assert_close(torch.tensor(f0["losses"] + f1["losses"]), torch.tensor(d0["losses"] + d1["losses"]),
                               rtol=1e-4, atol=1e-5)

    # one full file, as data parallel writes it: the same keys, weights and EMA within float noise
    a, b = state(fsdp / "checkpoints" / "last.ckpt"), state(ddp / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 4
    assert set(a["state_dict"]) == set(b["state_dict"])
    assert any(k.startswith("ema.") for k in a["state_dict"])
    for k, v in a["state_dict"].items():
        assert not hasattr(v, "full_tensor") and v.shape == b["state_dict"][k].shape, k
        torch.testing.assert_close(v, b["state_dict"][k], rtol=1e-4, atol=1e-5, msg=k)

    # ltx-export reads it; a run resumes from it on one process, and on two under FSDP again
    from ltx_train.export import export
    from ltx_train.pipeline import LTXVideoPipeline
    from test_lora_training import compose_cfg
    out = export(compose_cfg("export", tmp_path / "exp", f"checkpoint={fsdp}/checkpoints/last.ckpt",
                             f"out={tmp_path}/pretrained"))
    assert LTXVideoPipeline.from_pretrained(out).model is not None
    for trainer, world in (("trainer=cpu", 1), ("trainer=fsdp_cpu", 2)):
        run = tmp_path / f"resumed{world}"      # a resumed run writes into its checkpoint's run directory
        shutil.copytree(fsdp, run)
        run_ok(ltx_train(run, latent_cache, trainer, "data.batch_size=2", "trainer.max_steps=6",
                         f"ckpt_path={run}/checkpoints/last.ckpt"))
        assert [b["step"] for b in ranks(run, world)[0]["batches"]] == [5, 6]
        assert state(run / "checkpoints" / "last.ckpt")["global_step"] == 6


def test_a_lora_finetune_trains_under_fsdp_and_exports_its_adapter(latent_cache, tiny_base_dir, tmp_path):
    run = tmp_path / "lora"
    cmd = [c for c in ltx_train(run, latent_cache, "trainer=fsdp_cpu", "data.batch_size=2", "trainer.max_steps=2",
                                f"base={tiny_base_dir}", "model.lora.rank=4")
           if c not in ("experiment=dit_tiny", "callbacks=default", "model.ema_decay=0.9")]
    run_ok([*cmd[:3], "experiment=lora_style", *cmd[3:]])
    r0, r1 = ranks(run, 2)
    assert r0["weights"] == r1["weights"] and all(loss == loss for loss in r0["losses"])
    saved = state(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert saved and all("lora_" in k or k.startswith("ema.") or k == "stats_ready" for k in saved)
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
