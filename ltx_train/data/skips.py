"""Why a stream decoded nothing: the ``SkippedSampleWarning``s of a main-process read, collected.

Evaluation reads its batches in this process (``num_workers=0`` unless configured otherwise), so the
warnings the stream raises for each skipped sample can be gathered and summarised when no clip at
all comes out, instead of ending with a bare "no clips". Warnings raised in DataLoader worker
processes are printed there and cannot be collected here.
"""
from __future__ import annotations

import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

from ltx_train.data.stream import SkippedSampleWarning


@contextmanager
def recorded_skips() -> Iterator[list[SkippedSampleWarning]]:
    """Collect every SkippedSampleWarning raised inside the block (each still shown as usual)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", SkippedSampleWarning)  # one per sample, even for repeated texts
        skips: list[SkippedSampleWarning] = []
        show = warnings.showwarning

        def record(message, category, filename, lineno, file=None, line=None):
            if isinstance(message, SkippedSampleWarning):
                skips.append(message)
            show(message, category, filename, lineno, file, line)

        warnings.showwarning = record
        yield skips


def summarise_skips(skips: list[SkippedSampleWarning], most: int = 3) -> str:
    """'3 samples skipped: SampleError: video has 24 frames but the clip needs 25 (2: a, b); ...'."""
    if not skips:
        return "no sample was reported skipped in this process"
    by_reason = Counter(s.reason for s in skips)
    parts = []
    for reason, n in by_reason.most_common(most):
        keys = [str(s.key) for s in skips if s.reason == reason and s.key is not None][:3]
        parts.append(f"{reason} ({n}{': ' + ', '.join(keys) if keys else ''}{', ...' if n > len(keys) > 0 else ''})")
    more = len(by_reason) - most
    return f"{len(skips)} samples skipped: " + "; ".join(parts) + (f"; and {more} other reasons" if more > 0 else "")
