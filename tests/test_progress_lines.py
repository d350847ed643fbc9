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
