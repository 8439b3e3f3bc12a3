"""lwf: Avalanche's LwFPlugin through the facade, distilling toward the model before the edit."""

from __future__ import annotations

from seal_lightning.config import InnerConfig
from seal_lightning.continual.config import LwFConfig
from seal_lightning.continual.strategies.lwf import LwF

TARGETS = list(InnerConfig().lora.target_modules)


def test_lwf_distils_only_after_the_first_passage(model, tokenizer, stream, run):
    lwf = LwF(LwFConfig(alpha=1.0, temperature=2.0, batch_size=2), TARGETS, tokenizer.pad_token_id, seed=0)
    editor, _ = run(model, tokenizer, [lwf], stream[:1])
    first = list(lwf.penalties)
    editor.learn(stream[1])
    second = lwf.penalties[len(first) :]
    assert first == []  # nothing to distil on before a passage has been learnt
    assert second and max(second) > 0
    # The teacher is a frozen copy of the merged model before the second edit, not the model itself.
    teacher = lwf.plugin.lwf.prev_model.lm
    assert teacher is not editor.model
    assert not any(p.requires_grad for p in teacher.parameters())
    assert lwf.plugin.lwf.prev_classes_by_task[0]  # the tokens the edits were trained to predict
