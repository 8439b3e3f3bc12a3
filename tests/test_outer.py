from seal_lightning.outer import ScoredSelfEdit, select_best


def edit(passage, sample, reward, baseline=0.0):
    return ScoredSelfEdit(
        passage=passage, sample=sample, completion=f"{passage}{sample}", reward=reward, baseline=baseline
    )


def test_best_of_k_per_passage_kept_even_when_gain_is_negative():
    scored = [edit("a", 0, -2.0, -1.0), edit("a", 1, -1.5, -1.0), edit("b", 0, 0.3), edit("b", 1, 0.1)]
    kept = select_best(scored, min_gain=None)
    assert [(k.passage, k.sample) for k in kept] == [("a", 1), ("b", 0)]
    assert kept[0].gain == -0.5


def test_min_gain_drops_passages_whose_best_is_not_good_enough():
    scored = [edit("a", 0, -2.0, -1.0), edit("a", 1, -1.5, -1.0), edit("b", 0, 0.3), edit("b", 1, 0.1)]
    assert [(k.passage, k.sample) for k in select_best(scored, min_gain=0.0)] == [("b", 0)]
