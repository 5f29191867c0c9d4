import pandas as pd

from ferlib.viz import style, tables


def _wide():
    return pd.DataFrame([
        {"recipe": "densenet-bc", "row": "DenseNet-BC", "run": "60-min budget", "paper PublicTest": 69.3,
         "ours PublicTest": 67.4, "paper PrivateTest": 70.7, "ours PrivateTest": 64.1, "status": "results/x.json"},
        {"recipe": "densenet-bc", "row": "DenseNet-BC", "run": "full profile", "paper PublicTest": 69.3,
         "ours PublicTest": "not yet run", "paper PrivateTest": 70.7, "ours PrivateTest": "not yet run",
         "status": "python -m ferlib train densenet-bc --profile full"}])


def test_long_table_has_one_row_per_number_and_a_signed_difference():
    long = tables.paper_vs_ours_long(_wide())
    assert list(long.columns) == ["recipe", "run", "row", "metric", "paper", "ours", "ours - paper", "status"]
    assert len(long) == 4
    private = long[(long.metric == "PrivateTest") & (long.run == "60-min budget")].iloc[0]
    assert private["ours - paper"] == -6.6
    assert long[long.run == "full profile"]["ours - paper"].eq("").all()


def test_long_table_keeps_only_the_metrics_asked_for():
    long = tables.paper_vs_ours_long(_wide(), metrics=["PrivateTest"])
    assert set(long.metric) == {"PrivateTest"} and len(long) == 2


def test_wrapped_renders_html_with_wrapping():
    html = tables.wrapped(tables.paper_vs_ours_long(_wide())).to_html()
    assert "white-space: normal" in html and "densenet-bc" in html


def test_style_is_readable_and_titles_carry_the_tag():
    assert style.FONT >= 10 and style.DPI >= 80
    assert style.title("a", "SYNTHETIC") == "a\n[SYNTHETIC]" and style.title("a", None) == "a"


def test_figures_use_the_kit_font_size():
    from ferlib.viz import data_plots
    import numpy as np
    fig = data_plots.image_grid([np.zeros((4, 4))] * 2, 2, titles=["x", "y"], title="t", tag="tag")
    sizes = [t.get_fontsize() for ax in fig.axes for t in (ax.title,)]
    assert min(sizes) >= style.FONT and fig.dpi == style.DPI
