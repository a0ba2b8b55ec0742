"""Where a run's token streams come from: a corpus on disk, or a generated task."""

from __future__ import annotations

from rnnreg.config import RunConfig
from rnnreg.data import Corpus, load_corpus


def load_task_data(config: RunConfig) -> Corpus:
    if config.task == "memory":
        from rnnreg.tasks.memory import memory_corpus

        return memory_corpus(config.memory)
    return load_corpus(config.data_dir)
