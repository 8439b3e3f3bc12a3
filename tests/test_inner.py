import torch

from seal_lightning.config import InnerConfig, RewardConfig
from seal_lightning.data.builtin import builtin_passages
from seal_lightning.data.knowledge import Passage
from seal_lightning.inner import SelfEditScorer

PASSAGE = Passage.from_row(builtin_passages("validation")[0])


def test_lora_update_raises_the_loglik_of_its_own_answers(policy, tokenizer, knowledge):
    domain = knowledge(inner=InnerConfig(epochs=5))
    scorer = SelfEditScorer(policy, tokenizer, domain, RewardConfig(name="answer_loglik"))
    result = scorer.score(PASSAGE, domain.update(PASSAGE, ""), seed=0)
    assert result.baseline == scorer.baseline(PASSAGE)
    assert result.gain == result.reward - result.baseline
    assert result.gain > 0.3, result


def test_nothing_leaks_from_one_selfedit_to_the_next(policy, tokenizer, knowledge):
    before = {name: value.clone() for name, value in policy.state_dict().items()}
    modules_before = [name for name, _ in policy.named_modules()]
    domain = knowledge(inner=InnerConfig(epochs=2))
    update = domain.update(PASSAGE, "A line the model learns.")
    scorer = SelfEditScorer(policy, tokenizer, domain, RewardConfig(name="answer_loglik"))
    baseline = scorer.baseline(PASSAGE)
    first = scorer.score(PASSAGE, update, seed=0)
    assert SelfEditScorer(policy, tokenizer, knowledge(), RewardConfig()).baseline(PASSAGE) == baseline
    assert [name for name, _ in policy.named_modules()] == modules_before
    after = policy.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    # Same self-edit, same seed: same reward, since the second update starts from the same policy.
    assert scorer.score(PASSAGE, update, seed=0) == first
