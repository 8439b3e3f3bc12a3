from seal_lightning.examples import IGNORE_INDEX
from seal_lightning.mstep import SFTPair, cut_pairs, sft_examples


def test_a_selfedit_cut_by_the_sampler_is_learnt_without_eos(tokenizer):
    """Appending EOS to a self-edit that was cut mid-line would teach the policy to stop early."""
    whole, cut = sft_examples(
        [SFTPair("Passage: X", " 1. X is old."), SFTPair("Passage: X", " 1. X is old.", cut=True)], tokenizer, 64
    )
    assert whole["input_ids"][-1] == tokenizer.eos_token_id
    assert cut["input_ids"] == whole["input_ids"][:-1]
    prompt = len(tokenizer("Passage: X", add_special_tokens=False)["input_ids"])
    assert cut["labels"][:prompt] == [IGNORE_INDEX] * prompt


def test_pairs_longer_than_max_length_are_counted(tokenizer):
    pairs = [SFTPair("p", "short"), SFTPair("p", "long " * 40)]
    assert cut_pairs(pairs, tokenizer, 16) == 1 and cut_pairs(pairs, tokenizer, 1000) == 0
