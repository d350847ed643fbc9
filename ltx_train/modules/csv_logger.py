"""``ResumableCSVLogger``: Lightning's CSVLogger, except that an existing ``metrics.csv`` is appended to.

Lightning's writer deletes the metrics file of the version directory it opens. ``ltx-train`` resumes in
the run directory of the checkpoint and with the logger version it recorded there (see ``train.py``),
so the resumed run continues the same file. Rows the interrupted run logged after its last checkpoint
stay in the file, followed by the same steps again from the resumed run: readers keep the last row
per step (with an exact resume the repeated values are equal).
"""
from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # instead of deleting the previous metrics: continue them, with their header's columns
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class ResumableCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
