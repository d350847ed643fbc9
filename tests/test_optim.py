"""The training step's optimiser: fused AdamW, clipping by norm on the device, and the non-finite guard's
device-side skip keep the numbers of the path they replace (foreach AdamW + Lightning's clipping)."""
from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from fault_hooks import PoisonBatches
from ltx_train.data.latents import LatentDataModule
from ltx_train.modules.dit_module import DiTModule
from ltx_train.modules.ema import EMA
from ltx_train.modules.nonfinite import NonFiniteError, NonFiniteGuard, skips_on_device
from ltx_train.modules.optim import build_optimizer, lightning_scheduler, warmup_cosine
from test_reliability import QUIET, Tiny, batches

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class OldPath(DiTModule):
    """The step as it was: AdamW with foreach kernels, clipped by Lightning's own code."""

    def configure_optimizers(self):
        h = self.hparams
        opt = build_optimizer(self.model, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas), fused=False)
        return {"optimizer": opt, "lr_scheduler": lightning_scheduler(warmup_cosine(opt, 2, 20, 0.1), "lr")}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        L.LightningModule.configure_gradient_clipping(self, optimizer, gradient_clip_val, gradient_clip_algorithm)


class NewPath(DiTModule):
    def configure_optimizers(self):
        h = self.hparams
        opt = build_optimizer(self.model, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas))
        assert skips_on_device(opt)
        return {"optimizer": opt, "lr_scheduler": lightning_scheduler(warmup_cosine(opt, 2, 20, 0.1), "lr")}


class Record(L.Callback):
    def __init__(self):
        self.losses, self.norms = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        self.norms.append(float(trainer.callback_metrics["train/grad_norm"]))


def run(cls, base_dir, cache, steps: int = 12):
    L.seed_everything(0, verbose=False)
    module = cls(init_from=str(base_dir), latents=str(cache), lr=2e-3, ema_decay=0.9)
    rec = Record()
    trainer = L.Trainer(max_steps=steps, gradient_clip_val=0.05, callbacks=[rec, NonFiniteGuard()],
                        enable_checkpointing=False, **QUIET)
    trainer.fit(module, datamodule=LatentDataModule(str(cache), batch_size=2, shuffle=False))
    return rec, module


def test_fused_adamw_and_device_clipping_keep_the_loss_curve(tiny_base_dir, latent_cache):
    old, old_module = run(OldPath, tiny_base_dir, latent_cache)
    new, new_module = run(NewPath, tiny_base_dir, latent_cache)
    assert min(old.norms) > 0.05, "clipping was active on every step"
    torch.testing.assert_close(torch.tensor(new.norms), torch.tensor(old.norms), rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(torch.tensor(new.losses), torch.tensor(old.losses), rtol=1e-3, atol=1e-5)
    for (name, a), b in zip(new_module.model.named_parameters(), old_module.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=name)
    for a, b in zip(new_module.ema.averages(), old_module.ema.averages()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


class FusedTiny(Tiny):
    def configure_optimizers(self):
        return build_optimizer(self.parameters(), lr=self.hparams.lr)


def test_a_fused_optimizer_skips_nonfinite_steps_on_the_device_leaving_weights_moments_and_step():
    module, guard = FusedTiny(), NonFiniteGuard(max_consecutive=3)
    seen = {}

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            opt = trainer.optimizers[0]
            assert skips_on_device(opt)
            seen[trainer.global_step] = ([p.detach().clone() for p in pl_module.parameters()],
                                         [s[k].clone() for s in opt.state.values() for k in ("exp_avg", "step")])

    trainer = L.Trainer(max_steps=10, callbacks=[PoisonBatches(start=2), Snapshot(), guard], **QUIET)
    with pytest.raises(NonFiniteError, match=r"3 training batches in a row.*global step 5.*batch keys: s4a, s4b"):
        trainer.fit(module, batches(10))
    for step in (3, 4, 5):   # NaN batches: the fused kernel left weights, moments and its step count alone
        for a, b in zip(seen[2][0] + seen[2][1], seen[step][0] + seen[step][1]):
            assert torch.equal(a, b)
    assert guard.skipped == 3 and all(p.grad is not None for p in module.parameters())  # grads kept, not read


def test_an_ema_update_weighted_zero_moves_nothing_but_counts():
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.5)
    before = [a.clone() for a in ema.averages()]
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, weight=torch.tensor(0.0))
    assert all(torch.equal(a, b) for a, b in zip(ema.averages(), before)) and int(ema.num_updates) == 1
    ema.update(model, weight=torch.tensor(1.0))
    assert not torch.equal(ema.averages()[0], before[0])


def test_compiling_every_part_captures_whole_graphs_and_keeps_the_losses(tiny_base_dir, latent_cache):
    """``model.compile=all`` (ltx_train.parallelize) with dynamo's eager backend and fullgraph=True: every
    compiled part traces without a graph break and the losses and gradients equal the eager model's."""
    torch._dynamo.reset()
    batch = next(iter(LatentDataModule(str(latent_cache), batch_size=4).val_dataloader()))
    results = []
    for scope in (None, "all"):
        module = DiTModule(init_from=str(tiny_base_dir), latents=str(latent_cache)).train()
        if scope:
            from ltx_train.parallelize import compile_model
            compile_model(module.model, scope, backend="eager", fullgraph=True)
        losses = module._losses(batch, torch.Generator().manual_seed(0), train=False)
        losses["loss"].backward()
        grads = torch.cat([p.grad.flatten() for p in module.model.parameters() if p.grad is not None])
        results.append((losses, grads, list(module.model.state_dict())))
    for k in results[0][0]:
        torch.testing.assert_close(results[1][0][k], results[0][0][k])
    torch.testing.assert_close(results[1][1], results[0][1])
    assert results[0][2] == results[1][2]   # in-place compilation: the checkpoint keys do not change


def test_empty_param_groups_are_left_out_and_old_checkpoints_lose_theirs():
    """A LoRA adapter has matrices only: its undecayed group would be empty (DeepSpeed cannot partition
    one). Such a group is not built, and a checkpoint that has one drops it with its schedule entries."""
    from ltx_train.modules.optim import drop_empty_groups, param_groups, warmup_cosine
    lin = torch.nn.Linear(4, 4, bias=False)
    groups = param_groups(lin, 0.1)
    assert [len(g["params"]) for g in groups] == [1]
    old = torch.optim.AdamW([{"params": list(lin.parameters()), "weight_decay": 0.1},
                             {"params": [], "weight_decay": 0.0}], lr=1e-3)
    sched = warmup_cosine(old, 2, 10)
    lin(torch.randn(2, 4)).sum().backward()
    old.step()
    sched.step()
    ckpt = {"optimizer_states": [old.state_dict()], "lr_schedulers": [sched.state_dict()]}
    drop_empty_groups(ckpt)
    new = build_optimizer(lin, lr=1e-3, weight_decay=0.1)
    new.load_state_dict(ckpt["optimizer_states"][0])      # would raise on a group-count mismatch
    new_sched = warmup_cosine(new, 2, 10)
    new_sched.load_state_dict(ckpt["lr_schedulers"][0])
    new_sched.step()
    assert len(new.param_groups) == 1 and torch.equal(new.state[lin.weight]["exp_avg"], old.state[lin.weight]["exp_avg"])
