import math

import torch

from seal_lightning.config import InnerConfig, RewardConfig
from seal_lightning.domains import Question, SelfEditUpdate
from seal_lightning.knowledge.builtin import builtin_passages
from seal_lightning.knowledge.data import Passage
from seal_lightning.knowledge.domain import ANSWER_TEMPLATE
from seal_lightning.scorer import Job, SelfEditScorer, score_questions

# Not validation[0]: its answers are the hardest for this model to learn (+0.20 after 5 epochs, -0.65 after
# 10, against +0.92..+1.70 for the next three), which makes it a poor check of the mechanism.
PASSAGE = Passage.from_row(builtin_passages("validation")[1])
OTHER = Passage.from_row(builtin_passages("validation")[2])


def test_lora_update_raises_the_loglik_of_its_own_answers(policy, tokenizer, knowledge):
    domain = knowledge(inner=InnerConfig(epochs=5))
    scorer = SelfEditScorer(policy, tokenizer, domain, RewardConfig(name="answer_loglik"))
    (result,) = scorer.score_many([(PASSAGE, domain.update(PASSAGE, ""), 0)])
    assert result.baseline == scorer.baseline(PASSAGE)
    assert result.reward - result.baseline > 0.3, result


def test_nothing_leaks_from_one_selfedit_to_the_next(policy, tokenizer, knowledge):
    before = {name: value.clone() for name, value in policy.state_dict().items()}
    modules_before = [name for name, _ in policy.named_modules()]
    domain = knowledge(inner=InnerConfig(epochs=2))
    update = domain.update(PASSAGE, "A line the model learns.")
    scorer = SelfEditScorer(policy, tokenizer, domain, RewardConfig(name="answer_loglik"))
    baseline = scorer.baseline(PASSAGE)
    (first,) = scorer.score_many([(PASSAGE, update, 0)])
    assert SelfEditScorer(policy, tokenizer, knowledge(), RewardConfig()).baseline(PASSAGE) == baseline
    assert [name for name, _ in policy.named_modules()] == modules_before
    after = policy.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    # Same self-edit, same seed: same reward, since the second update starts from the same policy.
    assert scorer.score_many([(PASSAGE, update, 0)]) == [first]


def test_a_rejected_update_scores_the_model_as_it_is(policy, tokenizer, knowledge):
    domain = knowledge()
    scorer = SelfEditScorer(policy, tokenizer, domain, RewardConfig())
    rejected = SelfEditUpdate(examples=(), inner=InnerConfig(), error="not a tool call")
    (scores,) = scorer.measure([Job(rejected, 0, (domain.questions(PASSAGE),))], ["answer_loglik"])
    assert scores == [{"answer_loglik": scorer.baseline(PASSAGE)}]


def test_one_update_scores_each_of_its_question_sets(policy, tokenizer, knowledge):
    """Continued pretraining: one update on two passages, each passage's questions scored on their own."""
    domain = knowledge(inner=InnerConfig(epochs=3))
    update = SelfEditUpdate(
        domain.update(PASSAGE, "").examples + domain.update(OTHER, "").examples, domain.update(PASSAGE, "").inner
    )
    scorer = SelfEditScorer(policy, tokenizer, domain, RewardConfig())
    (scores,) = scorer.measure(
        [Job(update, 0, (domain.questions(PASSAGE), domain.questions(OTHER)))], ["answer_loglik"]
    )
    assert len(scores) == 2
    for passage, score in zip((PASSAGE, OTHER), scores, strict=True):
        assert score["answer_loglik"] > scorer.baseline(passage) + 0.2


def test_score_questions_reports_each_requested_metric(policy, tokenizer):
    questions = [Question(ANSWER_TEMPLATE.format(title="France", question="What is the capital of France?"), "Paris")]
    metrics = ["answer_loglik", "token_accuracy", "exact_match", "f1"]
    scores = score_questions(policy, tokenizer, questions, metrics, RewardConfig())
    assert set(scores) == set(metrics)
    assert scores["answer_loglik"] > math.log(0.05)  # a model this size knows Paris
    assert 0.0 <= scores["f1"] <= 1.0
