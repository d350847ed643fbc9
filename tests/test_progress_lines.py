"""ProgressLines: a line each time the step passes a multiple of ``every_n_steps``, also when the step
moves by 2 per batch (a GAN's two optimisers, from an odd step on)."""
from __future__ import annotations

from types import SimpleNamespace

from ltx_train.modules.progress import ProgressLines


def test_a_line_per_multiple_passed_also_when_two_optimisers_step_by_two(capsys):
    cb = ProgressLines(every_n_steps=10)
    trainer = SimpleNamespace(global_step=0, progress_bar_callback=None, is_global_zero=True, max_steps=60,
                              callback_metrics={})
    cb.on_train_start(trainer, None)
    steps = list(range(1, 8)) + list(range(9, 61, 2))   # one step per batch, then two (odd steps only)
    for s in steps:
        trainer.global_step = s
        cb.on_train_batch_end(trainer, None, None, None, 0)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[ltx-train] step")]
    assert [int(line.split()[2].split("/")[0]) for line in lines] == [11, 21, 31, 41, 51]


def test_model_summary_lists_parameters_and_no_flops_column(caplog):
    """ltx-train's summary at fit start: each module's parameters and mode, not Lightning 2.6's column of
    zero FLOPs (our modules take dict batches, so Lightning cannot count them)."""
    import logging

    import lightning as L
    import torch

    from ltx_train.modules.summary import ParamSummary
    from ltx_train.quiet import silence_library_noise

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 3)
            self.frozen = torch.nn.Linear(3, 2).eval().requires_grad_(False)

        def training_step(self, batch, _):
            return self.frozen(self.net(batch)).square().mean()

        def train_dataloader(self):
            return torch.utils.data.DataLoader(torch.randn(4, 4), batch_size=2)

        def configure_optimizers(self):
            return torch.optim.SGD(self.net.parameters(), lr=0.1)

    silence_library_noise()
    with caplog.at_level(logging.INFO):
        L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, callbacks=[ParamSummary()]).fit(Tiny())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Trainable params: 15" in text and "Non-trainable params: 8" in text
    assert "net    | Linear | 15" in text and "| eval" in text   # the frozen layer's mode
    assert "FLOPs" not in text and "already configured with model summary" not in text
