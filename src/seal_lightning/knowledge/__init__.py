"""Knowledge incorporation (SEAL's domain 1): passages, self-edits as implications to learn, questions
asked without the passage. Importing the package registers the domain; its `Domain`
(`knowledge/domain.py`) is built on first use."""

from __future__ import annotations

from seal_lightning.config import TEACHER_FORCED_METRICS
from seal_lightning.domains.registry import DomainSpec, register
from seal_lightning.knowledge.graders import exact_match, token_f1

SPEC = DomainSpec(
    name="knowledge",
    factory="seal_lightning.knowledge.domain:KnowledgeDomain",
    conditions=(
        "no_update",
        "passage",
        "passage_selfedit",
        "passage_external",
        "policy_no_update",
        "policy_selfedit",
        "policy_selfedit_base",
    ),
    metrics=(*TEACHER_FORCED_METRICS, "exact_match", "f1", "llm_judge"),
    graders={"exact_match": exact_match, "f1": token_f1},
    documents=True,
)
register(SPEC)
