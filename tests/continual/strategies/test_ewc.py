"""ewc: Avalanche's EWCPlugin through the facade, on the edited projections."""

from __future__ import annotations

import pytest

from seal_lightning.config import InnerConfig
from seal_lightning.continual.config import EWCConfig
from seal_lightning.continual.strategies.ewc import EWC

TARGETS = list(InnerConfig().lora.target_modules)


def test_ewc_penalty_is_zero_on_the_first_passage_and_positive_after(model, tokenizer, stream, run):
    ewc = EWC(EWCConfig(ewc_lambda=1e6, mode="online", decay_factor=1.0), TARGETS, batch_size=2)
    editor, _ = run(model, tokenizer, [ewc], stream[:1])
    first = list(ewc.penalties)
    editor.learn(stream[1])
    second = ewc.penalties[len(first) :]
    assert first and all(p == 0.0 for p in first)
    # The new adapter starts at zero (LoRA's B = 0), so the first step is free; later steps are not.
    assert second[0] == pytest.approx(0.0, abs=1e-9)
    assert max(second) > 0
    importances = ewc.plugin.importances[1]
    assert set(importances) == {name for name, _ in ewc.facade.model.named_parameters()}
    assert all(name.endswith(("q_proj", "v_proj")) for name in importances)
