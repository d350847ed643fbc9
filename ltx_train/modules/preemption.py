"""``Preemption``: on SIGTERM or SIGUSR1, finish the current step, save a checkpoint, exit non-zero.

The handler only records the signal. At the end of the training batch (``on_train_batch_end``, where
Lightning's ModelCheckpoint saves too: weights, optimisers, schedulers, loops, RNG and the data position
agree) the checkpoint is saved, and before the next batch Lightning's own ``SIGTERMException`` ends the
fit; ``ltx-train`` then exits with 128 + the signal number (143 for SIGTERM, 138 for SIGUSR1), also when
the signal came in the last step. A signal during validation is acted on at the next batch end. Under DDP the ranks agree on stopping with one boolean all-reduce per
step (``strategy.reduce_boolean_decision``), so they save and stop at the same step whichever got the signal.

- ``grace_s``: if the process has not exited ``grace_s`` seconds after the first signal (a very long
  step, a hung save), it exits anyway with the same status; checkpoint writes are atomic, so a save cut
  short leaves the previous checkpoint and ``last.ckpt`` intact.
- A second signal while saving is ignored (reported on stderr): it cannot interrupt or corrupt the save.
- Before training starts (setup, sanity validation) Lightning's own SIGTERM handling applies: it stops
  without a checkpoint, and there is nothing to lose yet.
- SLURM: with Lightning's ``SLURMEnvironment`` (auto-detected; ``auto_requeue=True`` by default) Lightning
  handles SIGUSR1 by saving ``hpc_ckpt_N.ckpt`` in ``trainer.default_root_dir`` and running ``scontrol
  requeue``; this callback defers that handler to the same step boundary, and a requeued job whose
  ``hydra.run.dir`` is the same directory (e.g. ``hydra.run.dir=outputs/${oc.env:SLURM_JOB_ID}``) resumes
  from it automatically. Submit with ``#SBATCH --signal=USR1@<seconds before the time limit>``.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


def _say(message: str) -> None:
    os.write(2, f"[ltx-train] {message}\n".encode())  # safe inside a signal handler, unlike logging


class Preemption(L.Callback):
    def __init__(self, grace_s: float = 120.0, signals: tuple[str, ...] | list[str] = ("SIGTERM", "SIGUSR1")):
        unknown = [s for s in signals if not isinstance(getattr(signal, str(s), None), signal.Signals)]
        if unknown:
            raise ValueError(f"callbacks.preemption.signals: unknown signal(s) {unknown}")
        if grace_s <= 0:
            raise ValueError(f"callbacks.preemption.grace_s must be > 0, got {grace_s}")
        self.grace_s, self.signals = float(grace_s), [getattr(signal, str(s)) for s in signals]
        self.received: int | None = None
        self.saved_path: str | None = None
        self._saved = False
        self._deferred: dict[int, object] = {}
        self._previous: dict[int, object] = {}
        self._timer: threading.Timer | None = None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.received or signal.SIGTERM)

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning installed its handlers when the fit began; ours replace them for the training loop
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            previous = signal.getsignal(signum)
            self._previous[signum] = previous
            if signum != signal.SIGTERM and callable(previous):
                self._deferred[signum] = previous  # e.g. Lightning's SLURM requeue: run at the step boundary
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        if self.received is not None:
            _say(f"signal {signum} ignored: already stopping after signal {self.received}")
            return
        self.received = signum
        _say(f"signal {signum}: saving a checkpoint after this step, exiting within {self.grace_s:g} s")
        self._timer = threading.Timer(self.grace_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        """Stop the grace-time watchdog and put the previous signal handlers back (the fit is over:
        the process exits on its own, or goes on with other work in a notebook or a test)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if threading.current_thread() is threading.main_thread():
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
        self._previous.clear()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.cancel()

    def _expire(self) -> None:
        _say(f"grace time of {self.grace_s:g} s after signal {self.received} expired: exiting now"
             + ("" if self._saved else " without a new checkpoint"))
        os._exit(self.exit_code)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop or self._saved:
            return
        self.received = self.received or signal.SIGTERM  # a rank that did not get the signal itself
        self._saved = True
        from ltx_train.modules.checkpointing import SafeModelCheckpoint
        ckpt = trainer.checkpoint_callback
        if isinstance(ckpt, SafeModelCheckpoint):
            self.saved_path = ckpt.save_now(trainer)
        else:
            self.saved_path = os.path.join(trainer.default_root_dir, f"preempted-step{trainer.global_step:06d}.ckpt")
            trainer.save_checkpoint(self.saved_path)
        log.warning("signal %d: saved %s at step %d", self.received, self.saved_path, trainer.global_step)
        deferred = self._deferred.get(self.received)
        if deferred is not None:
            deferred(self.received, None)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        # stop one hook later than the save, so that Lightning has logged the saved batch's metrics (they
        # are flushed on the way out); Lightning's own exception ends the fit, ltx-train sets the status
        if self._saved:
            raise SIGTERMException
