"""Account consolidation (SPEC section 1): one merge, a whole file in resumable chunks, and the
batches. Reading a file is ``input``'s, classifying its rows ``plan``'s against the rules of
``rules``; ``apply`` runs the chunks (each backend's own steps in ``strategies``), ``batches``
keeps one record per run."""

from portalctl.domain.consolidation.batches import BATCH_COLUMNS, list_batches, show_batch
from portalctl.domain.consolidation.one import consolidate_one
from portalctl.domain.consolidation.run import REPORT_COLUMNS, run_consolidation_file

__all__ = [
    "BATCH_COLUMNS",
    "REPORT_COLUMNS",
    "consolidate_one",
    "list_batches",
    "run_consolidation_file",
    "show_batch",
]
