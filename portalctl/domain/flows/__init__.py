"""The portal's guides as guided flows (``portalctl flow``): each step is the domain function
of a single command, called in the guide's order; a flow only orders the steps, and talks to the
rep through a ``Conversation`` (the CLI's), never printing."""

from portalctl.domain.flows.add_tin import AddTinAnswers, run_add_tin_flow
from portalctl.domain.flows.consolidate import ConsolidateAnswers, run_consolidate_flow
from portalctl.domain.flows.conversation import Conversation

__all__ = [
    "AddTinAnswers",
    "ConsolidateAnswers",
    "Conversation",
    "run_add_tin_flow",
    "run_consolidate_flow",
]
