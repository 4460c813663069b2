"""The persona core: proposals, personas, the step tree and engine. No Django here, ever."""

from __future__ import annotations

from personaweb.personas.delegating import (
    CodePersona,
    DelegatingPersona,
    LoopPersona,
    SequencePersona,
    decision_schema,
)
from personaweb.personas.dialogue import STRATEGIES, SimpleCharacter, dialogue_hierarchy
from personaweb.personas.engine import (
    ActionRefused,
    Engine,
    Mode,
    Observer,
    RunConfig,
    allowed_actions,
)
from personaweb.personas.group import (
    BackgroundRatings,
    GroupDirector,
    GroupSettings,
    group_hierarchy,
)
from personaweb.personas.hierarchies import HIERARCHIES, build_hierarchy, code_hierarchy
from personaweb.personas.persona import (
    BasicPersona,
    PersonaInfo,
    ProposeContext,
    ResponseDrivenPersona,
)
from personaweb.personas.proposal import ProposalFailed, ProposedResponse
from personaweb.personas.state import Event, EventKind, Next, NextKind, PathState, derive
from personaweb.personas.tree import (
    Action,
    MemoryStore,
    Node,
    NodeKind,
    NodeStatus,
    Store,
    export_tree,
    import_tree,
)

__all__ = [
    "HIERARCHIES",
    "STRATEGIES",
    "Action",
    "ActionRefused",
    "BackgroundRatings",
    "BasicPersona",
    "CodePersona",
    "DelegatingPersona",
    "Engine",
    "Event",
    "EventKind",
    "GroupDirector",
    "GroupSettings",
    "LoopPersona",
    "MemoryStore",
    "Mode",
    "Next",
    "NextKind",
    "Node",
    "NodeKind",
    "NodeStatus",
    "Observer",
    "PathState",
    "PersonaInfo",
    "ProposalFailed",
    "ProposeContext",
    "ProposedResponse",
    "ResponseDrivenPersona",
    "RunConfig",
    "SequencePersona",
    "SimpleCharacter",
    "Store",
    "allowed_actions",
    "build_hierarchy",
    "code_hierarchy",
    "decision_schema",
    "derive",
    "dialogue_hierarchy",
    "export_tree",
    "group_hierarchy",
    "import_tree",
]
