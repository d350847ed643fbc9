"""One clip's decode or render, single-threaded in the main process (shared by the shard and live streams)."""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def one_thread(enabled: bool):
    """Run the block with one torch thread when ``enabled`` (the main process, num_workers=0).

    DataLoader workers already run torch with one thread; in the main process the intra-op pool
    costs more than it gains on one clip's small tensors (30x slower log-mel on a busy 2-core box).
    """
    before = torch.get_num_threads()
    if enabled and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
