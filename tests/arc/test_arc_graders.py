import pytest

from seal_lightning.arc.graders import cell_accuracy, grid_match


def test_grid_match_and_cell_accuracy_read_the_first_grid_of_an_answer():
    gold = "012\n340"
    assert grid_match("Here it is:\n012\n340\nDone.", gold) == 1.0
    assert grid_match("012\n341", gold) == 0.0
    assert grid_match("no grid at all", gold) == 0.0
    assert cell_accuracy("012\n341", gold) == pytest.approx(5 / 6)
    assert cell_accuracy("01\n34", gold) == 0.0  # another shape
    assert cell_accuracy("", gold) == 0.0
