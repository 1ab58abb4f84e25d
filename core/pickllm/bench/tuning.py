"""A tuning replica of a data set: its train rows only, split again, for choosing settings.

Hyperparameters of the online policies (and of the warm start, the drift settings and the
off-policy reward model) are chosen without looking at the rows they are reported on.
:func:`tuning_table` keeps the train rows of a table and labels some of their folds
``test``: a stream about as long as the real test stream (folds 0 and 1 of
``routerbench_subset``'s train rows: 869 prompts against 945), with the remaining train
rows to fit offline routers and warm starts on. Every benchmark that reports on the test
rows can run on this replica instead (``--rows train``), with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from pickllm.bench.run import split_rows
from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError

__all__ = ["tuning_table"]


def tuning_table(table: OutcomeTable, *, test_folds: Sequence[int] = (0, 1)) -> OutcomeTable:
    """The train rows of ``table`` (split ``test`` left out), their ``test_folds`` as ``test``.

    Raises:
        ConfigError: the replica would have no train or no test rows.

    Examples:
        >>> from pickllm.data import load_outcomes
        >>> replica = tuning_table(load_outcomes("routerbench_subset"))
        >>> sorted(set(replica.splits)), replica.n_prompts
        (['test', 'train'], 2205)
    """
    train, _, _ = split_rows(table)
    sub = table.subset(train)
    chosen = np.isin(sub.folds, np.asarray(list(test_folds), dtype=int))
    if chosen.all() or not chosen.any():
        msg = (
            f"test_folds {list(test_folds)!r} must leave both train and test rows among "
            f"the folds {sorted(set(sub.folds.tolist()))}"
        )
        raise ConfigError(msg)
    splits = tuple("test" if c else "train" for c in chosen.tolist())
    return replace(sub, splits=splits)
