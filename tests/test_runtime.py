"""The runtime of one command, on the real built-in model: one sampler, told of each policy, always closed."""

from __future__ import annotations

import gc
import weakref

import pytest

from seal_lightning.configure import load_config
from seal_lightning.errors import ConfigError
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.runtime import open_runtime
from seal_lightning.sampling.hf import TransformersSampler
from seal_lightning.store import RunStore


def opened(run_dir, tokenizer, *overrides: str, resumable: bool = True):
    config = load_config(None, [f"run_dir={run_dir}", *overrides])
    return open_runtime(config, KnowledgeDomain(config, tokenizer), tokenizer, "fit", resumable)


def test_one_sampler_for_the_command_told_of_each_policy_then_closed(tmp_path, tokenizer, policy):
    with opened(tmp_path, tokenizer) as runtime:
        assert runtime.sampler is None  # nothing is built before a policy writes
        first = runtime.sampler_on(policy, runtime.model_path())
        assert isinstance(first, TransformersSampler) and first.model is policy
        other = runtime.load_model()
        assert runtime.sampler_on(other, "elsewhere") is first
        assert first.model is other
        assert runtime.model_path(2) == str(tmp_path / "round_2" / "policy")
    assert runtime.sampler is None


def test_the_sampler_does_not_keep_a_policy_its_caller_is_done_with(tmp_path, tokenizer, policy):
    with opened(tmp_path, tokenizer) as runtime:
        round_policy = runtime.load_model()
        sampler = runtime.sampler_on(round_policy, runtime.model_path())
        freed = weakref.ref(round_policy)
        del round_policy  # the round ends: its policy must not stay in memory beside the next one
        gc.collect()
        assert freed() is None
        with pytest.raises(RuntimeError, match="the sampler's policy was freed"):
            sampler.sample(["a prompt"], 1, [0])
        assert runtime.sampler_on(policy, runtime.model_path()).model is policy


def test_the_sampler_is_closed_when_the_command_fails(tmp_path, tokenizer, policy):
    with pytest.raises(RuntimeError, match="a round failed"), opened(tmp_path, tokenizer) as runtime:
        runtime.sampler_on(policy, runtime.model_path())
        raise RuntimeError("a round failed")
    assert runtime.sampler is None
    # The run directory is free again for the next command.
    with opened(tmp_path, tokenizer) as again:
        assert again.store.root == runtime.store.root


def test_the_scorer_answers_through_the_sampler_only_where_its_backend_serves_adapters(tmp_path, tokenizer, policy):
    with opened(tmp_path, tokenizer, "inner.batched=true") as runtime:
        runtime.sampler_on(policy, runtime.model_path())
        # transformers serves no saved adapters: the scorer answers with its own routed generate.
        assert runtime.scorer(policy, sampler_answers=True).answerer is None
        assert runtime.scorer(policy, {"item": -1.0}).baselines == {"item": -1.0}


def test_a_run_directory_holds_one_config(tmp_path, tokenizer):
    with opened(tmp_path, tokenizer, "seed=0"):
        pass
    with opened(tmp_path, tokenizer, "seed=0", "outer.rounds=4"):  # more rounds extend the same run
        pass
    with pytest.raises(ConfigError, match=r"holds a run with seed=0, not 1"), opened(tmp_path, tokenizer, "seed=1"):
        pass
    with opened(tmp_path, tokenizer, "seed=1", resumable=False):  # evaluate keeps its results in id folders
        pass


def test_a_setting_added_after_the_run_started_resumes_only_at_its_default(tmp_path, tokenizer):
    """A run directory from an older version lacks the settings added since: their defaults are what it did."""
    with opened(tmp_path, tokenizer):
        pass
    saved = RunStore(tmp_path).read_json("config.json")
    del saved["continual.olora.orthogonality"]
    RunStore(tmp_path).write_json("config.json", saved)
    with opened(tmp_path, tokenizer):
        pass
    RunStore(tmp_path).write_json("config.json", saved)  # without the setting again
    changed = opened(tmp_path, tokenizer, "continual.olora.orthogonality=2.0")
    with pytest.raises(ConfigError, match=r"continual.olora.orthogonality=None, not 2.0"), changed:
        pass
