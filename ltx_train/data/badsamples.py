"""Bad data: what kind of bad a skipped sample is, counting it, and stopping a run that reads mostly garbage.

``BadSamples`` lives where samples are decoded (the stream, possibly in a DataLoader worker). It keeps
a sliding window of the last ``bad_window`` samples read (a shard that cannot be read counts as one)
and raises ``TooManyBadSamples``, naming the worst shards, once more than ``max_bad_fraction`` of the
window is bad and the window holds at least ``bad_min_samples`` (so one bad sample among the first
few does not stop a run). Each worker judges its own window (workers read different shards), and
the window starts empty each epoch. ``max_bad_fraction=1`` never stops (the stream still fails after
``MAX_CONSECUTIVE_SKIPS`` undecodable samples in a row).

Warnings never understate: the first ``WARN_FIRST`` skips of each kind are warned one by one, then
every ``WARN_EVERY``-th with the running count of that kind. What batches carry (``take()``) are the
per-kind and per-shard counts since the previous batch; ``SkipTally`` sums them in the main process
over consumed batches, for metrics (``data/skipped_<kind>``), checkpoints and the summary at the end.
"""
from __future__ import annotations

import json
import warnings
from collections import Counter, deque

from ltx_train.data import decode

KINDS = ("unreadable_shard", "missing_video", "missing_caption", "bad_text", "bad_json", "too_short",
         "bad_video", "bad_audio", "bad_annotation", "other")
WARN_FIRST, WARN_EVERY = 5, 100
_WHERE = {"choose_start": "too_short", "decode_video": "bad_video", "decode_audio": "bad_audio",
          "resample_annotations": "bad_annotation", "_per_frame": "bad_annotation"}


class SkippedSampleWarning(UserWarning):
    """A sample (or shard) was skipped because it could not be read or decoded.

    ``key`` is the sample's key (None for a shard) and ``reason`` the error, so a caller can say why
    nothing was decoded (``ltx_train.data.skips``)."""

    def __init__(self, message: str, key: str | None = None, reason: str = ""):
        super().__init__(message)
        self.key, self.reason = key, reason or message


class TooManyBadSamples(RuntimeError):
    """More than ``max_bad_fraction`` of the recent samples were bad; the message names the worst shards."""


def classify(exn: BaseException) -> str:
    """The kind (one of ``KINDS``) of a decode error: by its type, else by where in decode.py it was raised."""
    if isinstance(exn, json.JSONDecodeError):  # decode_sample parses the caption and JSON itself
        return "bad_json"
    if isinstance(exn, UnicodeDecodeError):
        return "bad_text"
    msg = str(exn)
    if msg.startswith("no .mp4"):
        return "missing_video"
    if msg.startswith("no caption"):
        return "missing_caption"
    where, tb = None, exn.__traceback__
    while tb is not None:  # the innermost frame in decode.py says which part of the sample broke
        if tb.tb_frame.f_code.co_filename == decode.__file__:
            where = tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    return _WHERE.get(where, "other")


def worst_shards(bad: Counter, read: Counter | None = None, n: int = 5) -> str:
    """The ``n`` shards with the most bad samples, each with its count (of those read, where known)."""
    return ", ".join(f"{url} ({k} of {read[url]} read were bad)" if read and url in read else f"{url} ({k} bad)"
                     for url, k in bad.most_common(n))


class BadSamples:
    """Counts, warnings and the bad-fraction stop of one stream in one worker (see the module docstring)."""

    def __init__(self, role: str, max_bad_fraction: float = 0.1, window: int = 200, min_samples: int = 50):
        self.role, self.max_bad_fraction, self.min_samples = role, max_bad_fraction, min(min_samples, window)
        self.recent: deque[bool] = deque(maxlen=window)
        self.recent_bad = 0
        self.kinds, self.shard_bad, self.shard_read = Counter(), Counter(), Counter()
        self._new_kinds, self._new_shards = Counter(), Counter()  # since the last take()

    def _push(self, bad: bool, url: str | None) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.recent_bad -= self.recent[0]
        self.recent.append(bad)
        self.recent_bad += bad
        if url is not None:
            self.shard_read[url] += 1

    def good(self, url: str | None) -> None:
        self._push(False, url)

    def bad(self, kind: str, url: str | None, what: str, reason: str, key: str | None = None) -> None:
        """Count one bad sample or shard (``what`` names it), warn, and stop if the window is too bad."""
        self._push(True, url)
        self.kinds[kind] += 1
        self._new_kinds[kind] += 1
        if url is not None:
            self.shard_bad[url] += 1
            self._new_shards[url] += 1
        n = self.kinds[kind]
        if n <= WARN_FIRST:
            more = f"; further {kind} skips are reported every {WARN_EVERY}th" if n == WARN_FIRST else ""
            warnings.warn(SkippedSampleWarning(f"skipping {what}: {reason} [{kind} #{n}{more}]", key, reason))
        elif n % WARN_EVERY == 0:
            warnings.warn(SkippedSampleWarning(f"{n} {self.role} samples skipped as {kind} so far in this reader "
                                               f"({sum(self.kinds.values())} of all kinds); latest: {what}: {reason}",
                                               key, reason))
        self._check()

    def _check(self) -> None:
        seen = len(self.recent)
        if seen < self.min_samples or self.recent_bad <= self.max_bad_fraction * seen:
            return
        kinds = ", ".join(f"{k}={v}" for k, v in self.kinds.most_common())
        raise TooManyBadSamples(
            f"{self.role} data: {self.recent_bad} of the last {seen} samples were bad "
            f"({self.recent_bad / seen:.0%} > data.max_bad_fraction={self.max_bad_fraction:g}, window "
            f"data.bad_window={self.recent.maxlen}); worst shards: {worst_shards(self.shard_bad, self.shard_read)}; "
            f"skipped so far by kind: {kinds}. Fix or remove those shards, or raise data.max_bad_fraction.")

    def take(self) -> dict:
        """Per-kind and per-shard bad counts since the last call (what the next batch carries)."""
        out = {"kinds": dict(self._new_kinds), "shards": dict(self._new_shards)}
        self._new_kinds.clear()
        self._new_shards.clear()
        return out


class SkipTally:
    """Bad counts of one role's consumed batches (main process), summed from what each batch carried."""

    def __init__(self):
        self.kinds, self.shards = Counter(), Counter()

    def update(self, bad: dict) -> None:
        self.kinds.update(bad.get("kinds", {}))
        self.shards.update(bad.get("shards", {}))

    def summary(self, role: str) -> str:
        if not self.kinds:
            return f"{role} data: no samples skipped"
        kinds = ", ".join(f"{k}={v}" for k, v in self.kinds.most_common())
        return (f"{role} data: skipped {sum(self.kinds.values())} ({kinds}); "
                f"worst shards: {worst_shards(self.shards)}")

    def state_dict(self) -> dict:
        return {"kinds": dict(self.kinds), "shards": dict(self.shards)}

    def load_state_dict(self, state: dict) -> None:
        self.kinds, self.shards = Counter(state.get("kinds", {})), Counter(state.get("shards", {}))


def screen_shards(urls: list[str], role: str, max_bad_fraction: float) -> list[str]:
    """``urls`` without those that cannot be read at all; warns naming every damaged local shard.

    Missing and non-tar shards are dropped; a truncated one stays (it is read up to the damage, and the
    stream counts the rest as an ``unreadable_shard``). More than ``max_bad_fraction`` of the shards
    damaged stops the run here, before any sample is decoded.
    """
    from ltx_train.data.shardlist import check_shard, is_remote

    damaged = {u: why for u in urls if not is_remote(u) and (why := check_shard(u)) is not None}
    if not damaged:
        return list(urls)
    listing = "; ".join(f"{u}: {why}" for u, why in list(damaged.items())[:20])
    if len(damaged) > 20:
        listing += f"; ... and {len(damaged) - 20} more"
    if len(damaged) > max_bad_fraction * len(urls):
        raise TooManyBadSamples(f"{len(damaged)} of {len(urls)} {role} shards cannot be read "
                                f"(more than data.max_bad_fraction={max_bad_fraction:g}): {listing}")
    keep = [u for u in urls if u not in damaged or damaged[u].startswith("truncated")]
    warnings.warn(f"{len(damaged)} of {len(urls)} {role} shards are damaged, {len(urls) - len(keep)} left out "
                  f"(truncated ones are read up to the damage): {listing}", SkippedSampleWarning)
    if not keep:
        raise TooManyBadSamples(f"no readable {role} shards: {listing}")
    return keep
