import torch

from seal_lightning.config import InnerConfig
from seal_lightning.inner import adapted, truncated_examples
from seal_lightning.knowledge.builtin import builtin_passages
from seal_lightning.knowledge.data import Passage

# Not validation[0]: its answers are the hardest for this model to learn (+0.20 after 5 epochs, -0.65 after
# 10, against +0.92..+1.70 for the next three), which makes it a poor check of the mechanism.
PASSAGE = Passage.from_row(builtin_passages("validation")[1])
OTHER = Passage.from_row(builtin_passages("validation")[2])


def test_adapted_trains_an_adapter_then_gives_the_policy_back_untouched(policy, tokenizer, knowledge):
    before = {name: value.clone() for name, value in policy.state_dict().items()}
    modules_before = [name for name, _ in policy.named_modules()]
    update = knowledge(inner=InnerConfig(epochs=1)).update(PASSAGE, "A line the model learns.")
    ids = tokenizer(PASSAGE.questions[0].question, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = policy(input_ids=ids).logits
    with adapted(policy, tokenizer, update, seed=0) as model, torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits, plain)
    assert [name for name, _ in policy.named_modules()] == modules_before
    after = policy.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_documents_longer_than_max_length_are_counted(tokenizer, knowledge):
    domain = knowledge(inner=InnerConfig(max_length=24))
    update = domain.update(PASSAGE, "Short.\n" + "A line that goes on and on " * 10)
    # The long line and the passage document are cut; the short line is not.
    assert truncated_examples(update, tokenizer) == 2
    assert truncated_examples(knowledge().update(PASSAGE, "Short."), tokenizer) == 0
