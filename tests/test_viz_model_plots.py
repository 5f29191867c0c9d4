"""Chapter 02 figures: each helper returns a Figure on tiny input, and rejects what it cannot draw."""
import pytest
from matplotlib.figure import Figure

from ferlib.viz import model_plots as mp


def test_complexity_vs_growth():
    rows = [{"family": f, "k": k, "params": 1000 * k * k * s, "flops": 10 ** 6 * k * k * s}
            for f, s in (("A", 2), ("B", 1)) for k in (8, 12, 32)]
    fig = mp.complexity_vs_growth(rows, highlight=[("A", 12), ("B", 99)])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["A", "B"]
    with pytest.raises(ValueError):
        mp.complexity_vs_growth([])
    with pytest.raises(KeyError, match="flops"):
        mp.complexity_vs_growth([{"family": "A", "k": 8, "params": 1}])


def test_minor_label_only_2_and_5():
    assert mp._minor_label(0.2) == "0.2" and mp._minor_label(5e6) == "5e+06"
    assert mp._minor_label(3) == "" and mp._minor_label(0) == ""


def test_training_history():
    hist = [{"epoch": e, "train_loss": 2 - 0.1 * e, "val_accuracy": 0.1 * e, "lr": 0.1 if e < 3 else 0.01}
            for e in (1, 2, 3, 4)]
    fig = mp.training_history(hist, selected_epoch=3, title="t", tag="SYNTHETIC")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "SYNTHETIC" in fig._suptitle.get_text()
    assert any("lr" in t.get_text() for t in fig.axes[0].texts)  # the lr drop is marked
    assert any("epoch 3" in t.get_text() for t in fig.axes[1].texts)
    with pytest.raises(ValueError):
        mp.training_history([])
