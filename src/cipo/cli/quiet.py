"""Library output a person running ``cipo-train`` / ``cipo-eval`` should not have to read.

* transformers' progress bars for loading and writing weights ("Loading weights 38/38"): a
  built-in policy loads in milliseconds, and on a non-terminal they leave ``\\r`` garbage;
* a FutureWarning that Lightning 2.6 triggers in torch >= 2.10 on every ``trainer.fit``
  (``isinstance(treespec, LeafSpec)`` is deprecated): raised inside Lightning's
  ``utilities/_pytree.py``, nothing a user (or cipo) can act on;
* ModelCheckpoint's "Checkpoint directory ... exists and is not empty": every resumed run
  writes into its own checkpoints/ on purpose (``resume=``, ``ckpt_path=auto``).

Lightning's own INFO lines are turned off in ``conf/hydra/default.yaml`` (logger levels), where
a user can turn them back on. Warnings that concern the run itself are never filtered.
"""

from __future__ import annotations

import os
import warnings

PYTREE_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
CHECKPOINT_FOLDER_IN_USE = r"Checkpoint directory .* exists and is not empty"


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", message=PYTREE_DEPRECATION, category=FutureWarning)
    warnings.filterwarnings("ignore", message=CHECKPOINT_FOLDER_IN_USE)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
