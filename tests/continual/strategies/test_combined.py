"""Combined strategies (`a+b`): one sequence runs every part's plugin, each doing what it does alone."""

from __future__ import annotations

from seal_lightning.config import SealConfig
from seal_lightning.continual.config import ContinualConfig, OLoRAConfig
from seal_lightning.continual.strategies import build_plugins
from seal_lightning.continual.strategies.olora import OrthogonalLoRA
from seal_lightning.continual.strategies.replay import MixedReplay
from seal_lightning.continual.stream import examples_of


def test_a_combined_name_builds_every_parts_plugins_in_order(tokenizer):
    config = SealConfig(continual=ContinualConfig(strategy="replay_mix+olora"))
    plugins = build_plugins("replay_mix+olora", config, tokenizer, seed=0)
    assert [type(p) for p in plugins] == [MixedReplay, OrthogonalLoRA]
    assert [type(p) for p in build_plugins("olora+replay_mix", config, tokenizer, seed=0)] == [
        OrthogonalLoRA, MixedReplay
    ]  # fmt: skip
    assert config.continual.components == ["replay_mix", "olora"]


def test_combined_plugins_both_act_in_one_sequence(model, tokenizer, stream, run):
    """Replay adds remembered documents to later updates, and the O-LoRA penalty measures their overlap."""
    config = SealConfig(continual=ContinualConfig(strategy="replay_mix+olora", olora=OLoRAConfig(orthogonality=1.0)))
    plugins = build_plugins("replay_mix+olora", config, tokenizer, seed=0)
    _, reports = run(model, tokenizer, plugins, stream[:2])
    own = len(examples_of(stream[1].dataset))
    assert reports[1].examples > own  # replayed documents joined the passage's own
    assert "olora_overlap" in reports[1].plugins and plugins[1].bases
