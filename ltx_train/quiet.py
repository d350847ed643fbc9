"""Messages a user can do nothing about, silenced in one place, each with the reason it is noise here.

Called by every entry point (``ltx-train``, ``ltx-eval``, ``ltx-generate``, ``ltx-export``) so that
what a run prints is what matters: progress, metrics, skipped samples, errors.
"""
from __future__ import annotations

import logging
import warnings

# (message regex, why it does not apply to this framework)
IGNORED_WARNINGS = [
    (r".*isinstance\(treespec, LeafSpec\)",
     "Lightning 2.6's pytree shim on torch >= 2.10: library code, fixed upstream, harmless"),
    (r"Your `IterableDataset` has `__len__` defined",
     "our streams split shards/seeds per rank and worker (tests/test_datamodule.py), so __len__ is exact"),
    (r"The number of training batches \(\d+\) is smaller than the logging interval",
     "a small repeated dataset: Lightning still logs every log_every_n_steps steps across epochs"),
    (r"Using ModelCheckpoint with manual optimization and every_n_train_steps",
     "the vocoder (manual optimisation) is checkpointed after both optimisers' steps of a batch: what resume wants"),
    (r"FSDP2-wrapped module \(FSDP\w+\) returned a view tensor",
     "trainer=fsdp: the vocoder, its discriminators and the VAEs return reshaped views (squeeze, flatten); "
     "no caller changes them in place (tests/test_fsdp_stages.py matches DDP's weights)"),
    (r"Found \d+ module\(s\) in eval mode at the start of training",
     "the frozen VAEs, encoders and LoRA bases are in eval mode on purpose"),
    (r"Precision [\w-]+ is not supported by the model summary",
     "Lightning's summary sizes the model at 32 bits under bf16-mixed; the parameter counts it prints are right"),
]


# (substring of a Lightning info line, why it is noise here)
DROPPED_LINES = [
    ("litlogger", "Lightning's advertising tip for its cloud logger, printed at every fit"),
    ("Trainer already configured with model summary callbacks",
     "ltx-train passes its own summary (modules/summary.py: no column of zero FLOPs) on purpose"),
]


class _DropLines(logging.Filter):
    """The Lightning info lines of ``DROPPED_LINES``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text, _why in DROPPED_LINES)


# loggers that print at INFO through Hydra's root handler although nothing is wrong
QUIET_LOGGERS = {
    "alembic": "Optuna's database layer lists its schema plugins at import ('setup plugin ...'), "
               "once per hparams_search sweep even without a database",
}


def silence_library_noise() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern, _why in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in logger.filters):
            logger.addFilter(_DropLines())
