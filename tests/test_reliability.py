"""The reliability machinery in-process: plain hyper-parameters, atomic checkpoint files, last.ckpt links and
pruning, the non-finite guard (automatic and manual optimisation), RNG state, safe loading."""
from __future__ import annotations

import logging
import os
import signal

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from fault_hooks import PoisonBatches
from ltx_train.config import ConfigError
from ltx_train.modules import checkpointing
from ltx_train.modules.checkpointing import AtomicCheckpointIO, SafeModelCheckpoint
from ltx_train.modules.hparams import plain
from ltx_train.modules.nonfinite import NonFiniteError, NonFiniteGuard
from ltx_train.modules.preemption import Preemption
from ltx_train.modules.run_state import collect_rng_states, set_rng_states
from test_vocoder import batch_of, impact_clip

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
QUIET = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
             num_sanity_val_steps=0, limit_val_batches=0)


class Tiny(L.LightningModule):
    """A linear regression on batches {"x", "key"}; records every loss."""

    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.lin = torch.nn.Linear(4, 1)
        self.losses: list[float] = []

    def training_step(self, batch, _):
        loss = (self.lin(batch["x"]) - 1).pow(2).mean()
        self.losses.append(float(loss.detach()))
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def batches(n: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader([{"x": torch.randn(2, 4, generator=g), "key": [f"s{i}a", f"s{i}b"]} for i in range(n)],
                      batch_size=None)


@pytest.mark.parametrize("target, kwargs", [
    ("ltx_train.modules.audio_vae_module.AudioVAEModule", {"vae": {"latent_channels": 4}, "betas": [0.9, 0.95]}),
    ("ltx_train.modules.vocoder_module.VocoderModule", {"generator": {}, "mel": {"n_mels": 64}}),
])
def test_hydra_built_modules_write_checkpoints_that_load_with_weights_only(target, kwargs, tmp_path):
    module = instantiate(OmegaConf.create({"_target_": target, **kwargs}))  # nested args arrive as DictConfig
    assert all(not OmegaConf.is_config(v) for v in module.hparams.values())
    # what Lightning dumps, saved by plain torch.save: the hparams themselves must be plain
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__}
    torch.save(ckpt, tmp_path / "m.ckpt")
    restored = type(module).load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    assert dict(restored.hparams) == dict(module.hparams)


def test_plain_refuses_objects_naming_the_key():
    assert plain(OmegaConf.create({"a": [1, {"b": 2}]})) == {"a": [1, {"b": 2}]}
    with pytest.raises(TypeError, match=r"hp\.opt\[1\] is the class torch\.optim\..*Adam"):
        plain({"opt": [1, torch.optim.Adam]}, "hp")


def test_a_write_cut_short_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "c.ckpt"
    io.save_checkpoint({"step": 1}, path)

    def dies_halfway(checkpoint, tmp):
        tmp.write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # a kill while writing

    monkeypatch.setattr(checkpointing, "_torch_save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["c.ckpt"]  # no temp file left behind


def test_a_second_signal_during_the_save_does_not_corrupt_it(tmp_path, monkeypatch):
    pre = Preemption(grace_s=60)
    old = signal.signal(signal.SIGTERM, pre._on_signal)
    try:
        pre._on_signal(signal.SIGTERM, None)  # the first signal: stop after this step
        real = checkpointing._torch_save

        def signalled_mid_write(checkpoint, tmp):
            real(checkpoint, tmp)
            os.kill(os.getpid(), signal.SIGTERM)  # the scheduler insists while the file is being written
            real(checkpoint, tmp)

        monkeypatch.setattr(checkpointing, "_torch_save", signalled_mid_write)
        AtomicCheckpointIO().save_checkpoint({"w": torch.ones(3)}, tmp_path / "c.ckpt")
    finally:
        pre.cancel()  # the grace-time watchdog would end this (pytest's) process after grace_s
        signal.signal(signal.SIGTERM, old)
    assert torch.equal(torch.load(tmp_path / "c.ckpt", weights_only=True)["w"], torch.ones(3))
    assert pre.received == signal.SIGTERM and pre.exit_code == 143


def test_last_is_a_link_that_survives_pruning_and_keep_policies_hold(tmp_path):
    ckpt = SafeModelCheckpoint(dirpath=tmp_path, filename="step{step:03d}", auto_insert_metric_name=False,
                               every_n_train_steps=1, save_last="link", keep_last=2, keep_every_n_steps=4)
    trainer = L.Trainer(max_steps=9, callbacks=[ckpt], plugins=[AtomicCheckpointIO()], **QUIET)
    trainer.fit(Tiny(), batches(9))
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt", "step004.ckpt", "step008.ckpt", "step009.ckpt"]
    assert os.stat(tmp_path / "last.ckpt").st_ino == os.stat(tmp_path / "step009.ckpt").st_ino  # a hard link
    os.remove(tmp_path / "step009.ckpt")  # what pruning does to the previous newest: last.ckpt still loads
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 9


def test_nonfinite_weights_are_never_checkpointed(tmp_path):
    class Breaks(Tiny):
        def on_train_batch_end(self, *args):
            if self.global_step == 2:
                with torch.no_grad():
                    self.lin.weight[0, 0] = float("inf")

    ckpt = SafeModelCheckpoint(dirpath=tmp_path, filename="step{step}", every_n_train_steps=1, save_last="link",
                               keep_last=5, auto_insert_metric_name=False)
    L.Trainer(max_steps=3, callbacks=[ckpt], **QUIET).fit(Breaks(), batches(3))
    # step 3's weights (broken after step 2 was saved) are not written; last.ckpt stays the step-2 file
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt", "step1.ckpt", "step2.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 2


def test_nonfinite_steps_are_skipped_without_touching_weights_or_adam_state_then_stop_the_run():
    module, guard = Tiny(), NonFiniteGuard(max_consecutive=3)
    seen = {}

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            opt = trainer.optimizers[0]
            seen[trainer.global_step] = ([p.detach().clone() for p in pl_module.parameters()],
                                         [s["exp_avg"].clone() for s in opt.state.values()])

    trainer = L.Trainer(max_steps=10, callbacks=[PoisonBatches(start=2), Snapshot(), guard], **QUIET)
    with pytest.raises(NonFiniteError, match=r"3 training batches in a row.*global step 5.*batch keys: s4a, s4b"):
        trainer.fit(module, batches(10))
    for step in (3, 4, 5):  # steps 3-5 ran on NaN batches: nothing moved since step 2
        for a, b in zip(seen[2][0] + seen[2][1], seen[step][0] + seen[step][1]):
            assert torch.equal(a, b)
    assert guard.skipped == 3 and all(torch.isfinite(p).all() for p in module.parameters())
    assert trainer.callback_metrics["train/nonfinite_skipped"] == 2  # as logged by step 4, the last completed


def test_guard_skips_both_optimisers_of_the_manual_vocoder_and_a_good_batch_resets_the_count():
    from ltx_train.modules.vocoder_module import VocoderModule

    torch.manual_seed(0)
    module = VocoderModule(preset="tiny", segment_frames=8, lr=1e-3, disc_start_step=0, grad_clip=1.0)
    good = batch_of(torch.stack([impact_clip(4000, (0.1,), seed=s) for s in range(2)]))
    bad = {**good, "mel": torch.full_like(good["mel"], float("nan"))}
    guard = NonFiniteGuard(max_consecutive=2)
    # 2 optimiser steps per batch; no checkpoint (Lightning's default went to <cwd>/checkpoints/epoch=0-step=8*.ckpt)
    trainer = L.Trainer(max_steps=8, callbacks=[guard], enable_checkpointing=False, **QUIET)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer.fit(module, DataLoader([good, bad, good, bad], batch_size=None))
    assert guard.skipped == 4 and guard.consecutive == 1  # 2 bad batches x (D + G), not in a row
    assert all(torch.isfinite(v).all() for v in module.state_dict().values() if v.is_floating_point())
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())  # the good batches trained
    assert {"train/grad_norm", "train/grad_norm_opt1"} <= set(trainer.callback_metrics)


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np
    states = collect_rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    AtomicCheckpointIO().save_checkpoint({"rng": states}, tmp_path / "r.ckpt")
    set_rng_states(torch.load(tmp_path / "r.ckpt", weights_only=True)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


class Evil:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_planted_pickle_is_refused_by_the_frozen_loaders(tmp_path):
    from ltx_train.modules.frozen import load_audio_vae, load_video_vae, load_vocoder

    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "hyper_parameters": {"vae": Evil(marker)}}, tmp_path / "evil.ckpt")
    for load in (load_video_vae, load_audio_vae, load_vocoder):
        with pytest.raises(ConfigError, match=r"evil\.ckpt: refusing to load .*could run code"):
            load(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_an_old_trusted_checkpoint_with_dictconfig_hparams_is_converted_to_a_plain_one(tmp_path):
    from ltx_train.modules.audio_vae_module import AudioVAEModule
    from ltx_train.modules.convert_checkpoint import main as convert

    module = AudioVAEModule(vae={"latent_channels": 4})
    old = {"state_dict": module.state_dict(), "pytorch-lightning_version": L.__version__,
           "hyper_parameters": {"preset": "tiny", "vae": OmegaConf.create({"latent_channels": 4})}}
    torch.save(old, tmp_path / "old.ckpt")  # as written before hparams were plain
    with pytest.raises(Exception, match="DictConfig"):
        torch.load(tmp_path / "old.ckpt", weights_only=True)
    convert([str(tmp_path / "old.ckpt"), str(tmp_path / "new.ckpt")])
    restored = AudioVAEModule.load_from_checkpoint(tmp_path / "new.ckpt", weights_only=True)
    assert restored.hparams.vae == {"latent_channels": 4} and restored.vae.cfg.latent_channels == 4
