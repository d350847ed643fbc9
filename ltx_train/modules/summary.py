"""The model summary printed when a fit starts: each top-level module's type, parameters and mode.

Lightning 2.6's summary added a FLOPs column and a "Total FLOPs" line, both 0 unless the module defines
an ``example_input_array`` (none here: inputs are dicts of video, audio and text), so every stage printed
a column of zeros. This one prints what the user can read something from, and nothing else.
"""
from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count

COLUMNS = (" ", "Name", "Type", "Params", "Mode")
log = logging.getLogger(__name__)


class ParamSummary(ModelSummary):
    """``ModelSummary`` without the FLOPs column and total (the rest as Lightning prints it)."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int = 0,
                  **summarize_kwargs: Any) -> None:
        table = [(name, column) for name, column in summary_data if name in COLUMNS]
        rows = list(zip(*(column for _, column in table)))
        widths = [max(len(name), *(len(r[i]) for r in rows)) if rows else len(name)
                  for i, (name, _) in enumerate(table)]
        line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        lines = [line([name for name, _ in table]), "-" * (sum(widths) + 3 * (len(widths) - 1))]
        lines += [line(r) for r in rows]
        lines += [
            f"Trainable params: {get_human_readable_count(int(trainable_parameters))}",
            f"Non-trainable params: {get_human_readable_count(int(total_parameters - trainable_parameters))}",
            f"Total params size: {get_formatted_model_size(model_size)} MB",
            f"Modules: {total_training_modes.get('train', 0)} in train mode, "
            f"{total_training_modes.get('eval', 0)} in eval mode",
        ]
        log.info("model summary\n%s", "\n".join(lines))   # on_fit_start calls this on rank 0 only
