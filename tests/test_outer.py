import math

from seal_lightning.outer import format_round, summarize_round
from seal_lightning.selection import ScoredSelfEdit


class Item:
    def __init__(self, key: str) -> None:
        self.key = self.title = key


def test_rejected_selfedits_stay_out_of_the_round_means_and_are_counted():
    """A rejected self-edit scores its baseline; counting it would pull the mean gain toward zero."""
    scored = [
        ScoredSelfEdit("a", 0, "x", reward=0.6, baseline=0.2),
        ScoredSelfEdit("a", 1, "{", reward=0.2, baseline=0.2, error="not JSON"),
        ScoredSelfEdit("b", 0, "y", reward=0.5, baseline=0.4, truncated=True),
    ]
    summary = summarize_round(1, [Item("a"), Item("b")], scored, scored[:1], documents_cut=3)
    assert (summary.selfedits, summary.rejected, summary.truncated, summary.truncated_documents) == (3, 1, 1, 3)
    assert math.isclose(summary.mean_reward, 0.55) and math.isclose(summary.mean_gain, 0.25)
    assert math.isclose(summary.max_gain, 0.4) and summary.kept_fraction == 0.5
    line = format_round(summary, 2)
    assert "(1 rejected, 1 cut at sampler.max_new_tokens, 3 documents cut at inner.max_length)" in line


def test_a_round_where_every_selfedit_was_rejected_has_no_mean():
    scored = [ScoredSelfEdit("a", 0, "{", reward=0.2, baseline=0.2, error="not JSON")]
    summary = summarize_round(1, [Item("a")], scored, [], documents_cut=0)
    assert math.isnan(summary.mean_gain) and math.isnan(summary.max_reward) and summary.kept_fraction == 0
