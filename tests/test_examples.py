from seal_lightning.examples import IGNORE_INDEX, example_length, pad_batch, tokenize_example


def test_loss_covers_completion_and_eos_only(tokenizer):
    example = tokenize_example(tokenizer, "Question: where?", " Odrava", max_length=64)
    prompt_len = len(tokenizer("Question: where?", add_special_tokens=False)["input_ids"])
    assert example["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert example["labels"][prompt_len:] == example["input_ids"][prompt_len:]
    assert example["input_ids"][-1] == tokenizer.eos_token_id


def test_documents_train_on_every_token(tokenizer):
    example = tokenize_example(tokenizer, "", "Odrava\nOdrava is a town.", max_length=64)
    assert example["labels"] == example["input_ids"]


def test_padding_is_masked_out_of_the_loss(tokenizer):
    short = tokenize_example(tokenizer, "", "a", max_length=64)
    long = tokenize_example(tokenizer, "", "a much longer document", max_length=64)
    batch = pad_batch([short, long], tokenizer.pad_token_id)
    n = len(short["input_ids"])
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
    assert (batch["labels"][0, n:] == IGNORE_INDEX).all()
    # The pad token is EOS here; the real EOS at the end of a document keeps its label.
    assert batch["labels"][0, n - 1].item() == tokenizer.eos_token_id


def test_truncation_keeps_labels_aligned(tokenizer):
    example = tokenize_example(tokenizer, "p " * 50, "c " * 50, max_length=16)
    assert len(example["input_ids"]) == len(example["labels"]) == 16


def test_a_completion_known_to_be_cut_gets_no_eos(tokenizer):
    """A self-edit the sampler stopped at its token limit: learning EOS after it would teach stopping there."""
    whole = tokenize_example(tokenizer, "Question: where?", " Odrava", max_length=64)
    cut = tokenize_example(tokenizer, "Question: where?", " Odrava", max_length=64, eos=False)
    assert cut["input_ids"] == whole["input_ids"][:-1] and cut["labels"] == whole["labels"][:-1]
    assert tokenizer.eos_token_id not in cut["input_ids"]


def test_example_length_counts_what_tokenize_example_builds_before_it_cuts(tokenizer):
    prompt, completion = "p " * 50, "c " * 50
    assert example_length(tokenizer, prompt, completion) == len(
        tokenize_example(tokenizer, prompt, completion, 10**6)["input_ids"]
    )
