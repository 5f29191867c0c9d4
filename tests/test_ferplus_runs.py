"""Chapter 08's tables from results files: seeds aggregated, standard errors, gains, 'not yet run' with its command."""
from __future__ import annotations

import json
import math

import pytest

from ferlib.chapters import ferplus_runs as fr
from ferlib.data.classes import FERPLUS_CLASSES
from ferlib.jobs import tables
from ferlib.train.recipes import Claim


def write_result(root, recipe, seed, accuracy, *, budget="20min-cpu-2threads", n=3152, recall=None, own=False,
                 synthetic=False, history=None):
    folder = root / ("local" if own else "") / "budget"
    folder.mkdir(parents=True, exist_ok=True)
    recall = recall or {c: accuracy for c in FERPLUS_CLASSES}
    metrics = {split: {"accuracy": accuracy, "n": n,
                       "per_class": {c: {"recall": recall[c], "precision": 0.5, "f1-score": 0.5, "support": 10}
                                     for c in FERPLUS_CLASSES}} for split in ("PublicTest", "PrivateTest")}
    name = f"{recipe}-{budget}{'-synthetic' if synthetic else ''}{f'-seed{seed}' if seed else ''}.json"
    (folder / name).write_text(json.dumps({"recipe": recipe, "seed": seed, "metrics": metrics, "epochs_run": 7,
                                           "history": history or [],
                                           "synthetic": synthetic, "profile": "budget",
                                           "budget": {"kind": "wall-clock", "minutes": 20},
                                           "provenance": {"device": "cpu", "device_name": "test CPU"}}))


@pytest.fixture
def results_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def test_seeds_are_aggregated_with_their_standard_error(results_root):
    write_result(results_root, "light-base-sl", 0, 0.80)
    write_result(results_root, "light-base-sl", 1, 0.82)
    runs = fr.row_runs("light-base-sl")
    assert runs.n == 2 and runs.seeds == [0, 1] and runs.budget == "20min-cpu-2threads"
    s = runs.summary()
    assert s["mean"] == pytest.approx(81.0) and s["min"] == pytest.approx(80.0) and s["max"] == pytest.approx(82.0)
    assert s["se"] == pytest.approx(1.0)  # std (ddof 1) sqrt(2) over sqrt(2)
    assert runs.se() == pytest.approx(1.0)


def test_one_seed_uses_the_binomial_standard_error(results_root):
    write_result(results_root, "light-base-s-sl", 0, 0.85, n=3152)
    runs = fr.row_runs("light-base-s-sl")
    assert runs.summary()["se"] is None
    assert runs.se() == pytest.approx(100 * math.sqrt(0.85 * 0.15 / 3152))


def test_synthetic_and_quick_runs_are_not_rows(results_root):
    write_result(results_root, "light-base-tl", 0, 0.9, synthetic=True)
    (results_root / "quick").mkdir()
    (results_root / "quick" / "light-base-tl.json").write_text(json.dumps({"metrics": {}}))
    assert fr.row_runs("light-base-tl").n == 0


def test_the_largest_budget_wins_and_the_kits_seed_before_yours(results_root):
    write_result(results_root, "light-base-l-sl", 0, 0.70, budget="10min-cpu-2threads")
    write_result(results_root, "light-base-l-sl", 0, 0.80)
    write_result(results_root, "light-base-l-sl", 0, 0.60, own=True)
    write_result(results_root, "light-base-l-sl", 1, 0.84, own=True)
    runs = fr.row_runs("light-base-l-sl")
    assert runs.budget == "20min-cpu-2threads" and runs.seeds == [0, 1]
    assert list(runs.accuracies()) == pytest.approx([80.0, 84.0])
    assert runs.origins == ["the kit", "your run"] and "your run" in runs.label()


def test_table_says_not_yet_run_with_the_command(results_root):
    write_result(results_root, "light-base-sl", 0, 0.80)
    t = fr.table(["light-base-sl", "light-base-s-sl"])
    assert t.loc["light-base-sl", "ours mean"] == pytest.approx(80.0) and t.loc["light-base-sl", "paper Avg"] == 81.95
    assert t.loc["light-base-s-sl", "ours mean"] == "not yet run"
    assert t.loc["light-base-s-sl", "run"] == ("not yet run: python -m ferlib train light-base-s-sl --minutes 30 "
                                               "--seed 0 --threads 1")
    assert fr.train_command("vgg13-o-l-tl", publish=True).endswith("--minutes 60 --seed 0 --threads 1 --publish")


def test_gain_and_the_papers_gain(results_root):
    assert fr.gain("light-base-s-sl", "light-base-sl") is None
    for seed, (a, b) in enumerate(((0.80, 0.83), (0.82, 0.85))):
        write_result(results_root, "light-base-sl", seed, a)
        write_result(results_root, "light-base-s-sl", seed, b)
    g = fr.gain("light-base-s-sl", "light-base-sl")
    assert g["difference"] == pytest.approx(3.0) and g["se"] == pytest.approx(math.sqrt(2.0)) and g["n"] == (2, 2)
    assert Claim("S", "light-base-s-sl", "light-base-sl").paper_gain == pytest.approx(84.47 - 81.95)
    assert Claim("L + TL", "vgg13-o-l-tl", "vgg13-o-sl").paper_gain == pytest.approx(3.10)  # the paper's "up to 3.1 %"


def test_claims_table_puts_the_papers_difference_beside_ours_and_says_what_it_is_evidence_of(results_root):
    claims = [Claim("features (S)", "light-base-s-sl", "light-base-sl", table="Table II"),
              Claim("loss (TL)", "light-base-tl", "light-base-sl", table="Table II")]
    assert tables.claims_verdicts(tables.claims_table(claims)) is None  # nothing run yet
    for seed, (a, b) in enumerate(((0.80, 0.83), (0.82, 0.85))):
        write_result(results_root, "light-base-sl", seed, a)
        write_result(results_root, "light-base-s-sl", seed, b)
    t = tables.claims_table(claims)
    row = t.loc[("Table II", "features (S)")]
    assert row["ours (points)"] == pytest.approx(3.0) and row["± SE"] == pytest.approx(1.41)
    assert row["paper (points)"] == pytest.approx(2.52) and row["seeds"] == "2/2"
    assert row["budget"] == "20min-cpu-2threads"
    assert t.loc[("Table II", "loss (TL)"), "ours (points)"] == tables.NOT_RUN
    text = tables.claims_verdicts(t)
    assert text.count("\n") == 0  # one bullet: the claim without runs is left out
    assert "ours +3.00 ± 1.41 points; 0.48 points above the paper's 2.52 points" in text
    assert text.endswith("a gain larger than 2 standard errors.")  # z = 3.0 / 1.41 = 2.1


def test_a_claim_on_variants_takes_the_papers_difference_from_the_rows_they_stand_for():
    c = Claim("exponential triplet + k-NN vs softmax", "dnnrl-64px", "dnnrl-dnn-64px",
                     paper_rows=("dnnrl", "dnnrl-dnn"))
    assert c.paper_gain == pytest.approx(70.60 - 69.22)
    assert Claim("x", "dnnrl-64px", "dnnrl-dnn-64px").paper_gain is None  # variants have no paper number
    assert Claim("center", "cl-resnet50", "resnet50").paper_gain == pytest.approx(63.402 - 62.079)  # "accuracy" key


def test_every_registered_claim_names_two_recipes_and_has_the_papers_difference():
    from ferlib.train.recipes import CLAIMS, RECIPES
    assert set(CLAIMS) == {"densenet-cl", "dnnrl", "cl-resnet50", "sobel-laplacian-cl"}
    for paper, claims in CLAIMS.items():
        for c in claims:
            assert c.better in RECIPES and c.base in RECIPES and c.better != c.base
            assert RECIPES[c.better].paper == RECIPES[c.base].paper == paper
            assert c.paper_gain is not None, c


def test_evidence_phrase_needs_a_positive_standard_error():
    from ferlib.evaluate.wording import evidence_phrase
    assert evidence_phrase(3.0, 1.0).startswith("a gain larger than 2")
    assert evidence_phrase(-3.0, 1.0).startswith("a loss larger than 2")
    assert evidence_phrase(1.9, 1.0).startswith("within 2 standard errors")
    with pytest.raises(ValueError, match="positive"):
        evidence_phrase(1.0, 0.0)


def test_per_class_recall_in_ferplus_order(results_root):
    recall = {c: i / 10 for i, c in enumerate(FERPLUS_CLASSES)}
    write_result(results_root, "light-base-tl", 0, 0.8, recall=recall)
    pc = fr.row_runs("light-base-tl").per_class_recall()
    assert list(pc) == list(FERPLUS_CLASSES) and pc["contempt"] == pytest.approx(70.0)


def test_convergence_says_when_a_run_left_the_majority_class_and_whether_the_budget_ended_it(results_root):
    write_result(results_root, "light-base-sl", 0, 0.45)
    path = results_root / "budget" / "light-base-sl-20min-cpu-2threads.json"
    r = json.loads(path.read_text())
    curve = [0.369, 0.369, 0.371, 0.40, 0.45]
    r.update(history=[{"epoch": i + 1, "val_accuracy": a} for i, a in enumerate(curve)], selected_epoch=5)
    path.write_text(json.dumps(r))
    write_result(results_root, "light-base-tl", 0, 0.45)  # no history: not a row of the table
    c = fr.convergence(["light-base-sl", "light-base-tl", "light-base-s-sl"]).set_index("recipe")
    assert list(c.index) == ["light-base-sl"]
    row = c.loc["light-base-sl"]
    assert row["epochs"] == 5 and row["first epoch > epoch 1 + 1 point"] == 4 and row["still rising at the end"]
    assert row["PublicTest % kept"] == 45.0 and row["PublicTest % at epoch 1"] == 36.9


def test_a_curve_reads_its_own_budget_only(results_root):
    write_result(results_root, "light-base-sl", 0, 0.50, budget="30min-cpu-1thread")
    write_result(results_root, "light-base-sl", 1, 0.52, budget="30min-cpu-1thread")
    write_result(results_root, "light-base-sl", 0, 0.44, budget=fr.sweep_budget(),
                 history=[{"val_accuracy": a} for a in (0.37, 0.37, 0.40, 0.45)])
    write_result(results_root, "light-base-tl", 0, 0.35, budget="30min-cpu-1thread")
    assert fr.sweep_budget() == "20min-cpu-1thread"
    assert fr.row_runs("light-base-sl").budget == "30min-cpu-1thread"  # a Table II row: the largest budget
    point = fr.sweep_runs("light-base-sl")
    assert point.budget == "20min-cpu-1thread" and point.seeds == [0] and list(point.accuracies()) == [44.0]
    missing = fr.sweep_runs("light-base-tl")  # run on another budget only: not a point of the curve
    assert missing.n == 0 and missing.budget == "20min-cpu-1thread"
    assert fr.train_command("light-base-tl", plan=fr.SWEEP_PLAN).endswith("--minutes 20 --seed 0 --threads 1")
    starts = fr.convergence(["light-base-sl"], budget=fr.sweep_budget())
    assert list(starts["epochs"]) == [4] and list(starts["first epoch > epoch 1 + 1 point"]) == [3]


def test_gain_on_one_budget(results_root):
    write_result(results_root, "light-base-sl", 0, 0.50, budget="30min-cpu-1thread")
    write_result(results_root, "light-base-sl", 0, 0.40, budget="20min-cpu-1thread")
    write_result(results_root, "light-base-tl-lambda0.01", 0, 0.43, budget="20min-cpu-1thread")
    g = fr.gain("light-base-tl-lambda0.01", "light-base-sl", budget="20min-cpu-1thread")
    assert g["difference"] == pytest.approx(3.0) and g["budgets"] == ("20min-cpu-1thread", "20min-cpu-1thread")
    assert fr.gain("light-base-tl-lambda0.01", "light-base-sl")["budgets"][1] == "30min-cpu-1thread"
