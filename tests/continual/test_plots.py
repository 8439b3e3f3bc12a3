import numpy as np
import pytest

from seal_lightning.continual.plots import save_comparison_figure, save_strategy_figure, save_tradeoff_figure
from seal_lightning.stats import PairedDifference

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FINETUNE = np.array([[0.1, 0.2, 0.3], [0.6, 0.2, 0.3], [0.8, 0.7, 0.3], [0.4, 0.5, 0.9]])
REPLAY = np.array([[0.1, 0.2, 0.3], [0.5, 0.2, 0.3], [0.6, 0.6, 0.3], [0.6, 0.6, 0.7]])


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > len(PNG_SIGNATURE)
    assert data.startswith(PNG_SIGNATURE)


def test_strategy_figure_is_a_png(tmp_path):
    path = save_strategy_figure(tmp_path / "finetune.png", FINETUNE, "finetune")
    assert path == tmp_path / "finetune.png"
    assert_png(path)


@pytest.mark.parametrize("with_reference", [False, True], ids=["alone", "with-reference"])
def test_comparison_figure_is_a_png(tmp_path, with_reference):
    # The reference has another N (4) than the strategies (3), like the paper's 8 against a small run.
    reference = np.linspace(0.0, 0.5, 20).reshape(5, 4) if with_reference else None
    matrices = {"finetune": FINETUNE, "replay": REPLAY}
    path = save_comparison_figure(tmp_path / "plots" / "compare.png", matrices, reference)
    assert_png(path)


def test_tradeoff_figure_is_a_png_with_a_point_per_strategy_and_setting(tmp_path):
    share = PairedDifference(0.4, 0.3, 0.5, 16, 1000)
    points = {"naive": (PairedDifference(1, 1, 1, 16, 1000),) * 2, "replay (squad)": (share, share)}
    path = save_tradeoff_figure(tmp_path / "tradeoff.png", points, (0.5, 0.9))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
