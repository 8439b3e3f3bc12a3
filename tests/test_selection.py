from seal_lightning.selection import ScoredSelfEdit, select_best


def edit(item, sample, reward, baseline=0.0, error=None, completion=None):
    text = f"{item}{sample}" if completion is None else completion
    return ScoredSelfEdit(item=item, sample=sample, completion=text, reward=reward, baseline=baseline, error=error)


def kept_ids(kept):
    return [(k.item, k.sample) for k in kept]


def test_best_of_k_per_item_kept_even_when_gain_is_negative():
    scored = [edit("a", 0, -2.0, -1.0), edit("a", 1, -1.5, -1.0), edit("b", 0, 0.3), edit("b", 1, 0.1)]
    kept = select_best(scored, min_gain=None)
    assert kept_ids(kept) == [("a", 1), ("b", 0)]
    assert kept[0].gain == -0.5


def test_min_gain_drops_items_whose_best_is_not_good_enough():
    scored = [edit("a", 0, -2.0, -1.0), edit("a", 1, -1.5, -1.0), edit("b", 0, 0.3), edit("b", 1, 0.1)]
    assert kept_ids(select_best(scored, min_gain=0.0)) == [("b", 0)]


def test_solved_at_keeps_every_solving_selfedit_and_the_best_where_none_solves():
    scored = [edit("a", 0, 1.0), edit("a", 1, 0.4), edit("a", 2, 1.0), edit("b", 0, 0.2), edit("b", 1, 0.7)]
    assert kept_ids(select_best(scored, min_gain=None, solved_at=1.0)) == [("a", 0), ("a", 2), ("b", 1)]


def test_rejected_selfedits_are_never_kept():
    scored = [edit("a", 0, 0.5, 0.5, error="not JSON"), edit("a", 1, 0.1, 0.5), edit("b", 0, 0.0, error="x")]
    assert kept_ids(select_best(scored, min_gain=None)) == [("a", 1)]


def test_empty_selfedits_are_never_kept_as_the_reference_drops_them():
    """An empty completion trains on the passage alone and may score best, but there is nothing to learn from it."""
    scored = [edit("a", 0, 0.9, completion=" \n"), edit("a", 1, 0.2), edit("b", 0, 0.5, completion="")]
    assert kept_ids(select_best(scored, min_gain=None)) == [("a", 1)]


def test_a_selfedit_whose_grades_all_failed_is_never_kept():
    """NaN reward (every llm_judge grade failed): nothing says it is good, whatever order max() sees."""
    scored = [edit("a", 0, float("nan")), edit("a", 1, 0.2), edit("b", 0, float("nan"))]
    assert kept_ids(select_best(scored, min_gain=None)) == [("a", 1)]
