"""Training on two processes (torchrun, gloo on the CPU): sharded batches, one results file, resume after a
kill, and a first step equal to one process's step over the same global batch (``ferlib.train.distributed``)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ferlib.data.batches import DeviceBatchSource, shard_bounds
from ferlib.data.synthetic import make_synthetic_faces
from ferlib.data.transforms import get_augment
from ferlib.errors import UsageError
from ferlib.train.distributed import check_global_batch
from ferlib.train.recipes import Budget, smoke_recipe


# -- sharding ---------------------------------------------------------------------------------
def _source(n: int, batch: int, rank: int = 0, world: int = 1, **kw) -> DeviceBatchSource:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
    return DeviceBatchSource(pixels, np.arange(n) % 7, batch_size=batch, augment=get_augment("densenet"), seed=3,
                             extra={"index": np.arange(n)}, rank=rank, world_size=world, **kw)


@pytest.mark.parametrize("n, batch, world", [(51, 12, 3), (50, 12, 2), (100, 32, 4)])
def test_rank_slices_make_up_the_single_process_batch(n, batch, world):
    """Concatenated in rank order, the slices are the single-process batch: same samples, same augmentation."""
    single = _source(n, batch)
    ranks = [_source(n, batch, r, world) for r in range(world)]
    assert all(len(s) == len(single) for s in ranks)
    for epoch in (0, 1):
        seen = []
        for k, (x, y, extra) in enumerate(single.iter_from(epoch)):
            parts = [s.batch(epoch, k) for s in ranks]
            assert [p[1].shape[0] for p in parts] == [hi - lo for lo, hi in
                                                      (shard_bounds(y.shape[0], r, world) for r in range(world))]
            assert torch.equal(torch.cat([p[0] for p in parts]), x)
            assert torch.equal(torch.cat([p[1] for p in parts]), y)
            seen += torch.cat([p[2]["index"] for p in parts]).tolist()
        assert sorted(seen) == list(range(n))  # every sample once in the epoch: no duplicate, none left out


def test_a_last_batch_too_small_to_share_is_dropped_and_uneven_batches_refused():
    # 49 = 4 x 12 + 1: the one left-over image cannot go to 3 processes, so the epoch has 4 batches
    assert len(_source(49, 12, 0, 3)) == 4 and len(_source(49, 12)) == 5
    ranks = [_source(49, 12, r, 3) for r in range(3)]
    seen = [int(i) for s in ranks for _, _, e in s.iter_from(0) for i in e["index"]]
    assert len(seen) == len(set(seen)) == 48
    with pytest.raises(ValueError, match="does not split evenly over 5"):
        _source(49, 12, 0, 5)
    with pytest.raises(UsageError, match="does not split evenly over 3 processes"):
        check_global_batch(128, 3)
    check_global_batch(128, 4)


def test_sync_bn_and_environment_mistakes_are_one_message(monkeypatch):
    from ferlib.train.distributed import session, world_size_from_env

    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="this is a single process"):
        with session(torch.device("cpu"), sync_bn=True):
            pass
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UsageError, match="GPUs only"):  # refused before any process group is joined
        with session(torch.device("cpu"), sync_bn=True):
            pass
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(UsageError, match="not a number"):
        world_size_from_env()


def test_budget_results_name_the_number_of_processes(monkeypatch):
    from ferlib.runs import budget_tag, RunKey

    monkeypatch.setenv("WORLD_SIZE", "4")
    assert budget_tag(10, torch.device("cuda")) == "10min-cuda-4gpus"
    assert budget_tag(60, torch.device("cpu"), threads=1, processes=2) == "60min-cpu-1thread-2procs"
    assert RunKey.parse("densenet-bc-10min-cuda-4gpus-seed0") == RunKey("densenet-bc", "10min-cuda-4gpus")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert budget_tag(10, torch.device("cuda")) == "10min-cuda"


# -- the first step, two processes against one --------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recipe():
    return smoke_recipe("densenet-bc-center", quick=Budget(epochs=1, train_per_class=12, eval_per_class=2))


def _running_stats_batchnorm(model: torch.nn.Module) -> None:
    """"BN aside": every BatchNorm normalises with its running statistics (an affine map, the same on every rank)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.register_forward_pre_hook(lambda module, args: setattr(module, "training", False))


def _first_step(run_dir: Path) -> dict:
    """One optimiser step of the built run (84 images: one global batch); its gradients and the centers after it."""
    from ferlib.data.splits import prepare_splits
    from ferlib.train.build import build_run
    from ferlib.train.callbacks import TrainingInterrupted
    from ferlib.train.distributed import unwrap

    recipe = _recipe()
    data = prepare_splits(make_synthetic_faces(n_per_class=16, seed=0), recipe.quick.train_per_class,
                          recipe.quick.eval_per_class, 0)
    t = build_run(recipe, data, profile="quick", device="cpu", run_dir=run_dir, precision="fp32", progress=False,
                  stop_after_steps=1).trainer
    _running_stats_batchnorm(unwrap(t.model))
    with pytest.raises(TrainingInterrupted):
        t.fit(resume=False)
    return {"grads": {n: p.grad.clone() for n, p in unwrap(t.model).named_parameters()},
            "centers": unwrap(t.criterion).centers.clone(), "batch": t.train_source.batch(0, 0)[1].shape[0]}


def _rank_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from ferlib.train.distributed import session

    with session(torch.device("cpu")):
        torch.save(_first_step(Path(out) / "run"), Path(out) / f"rank{rank}.pt")


def test_first_step_gradient_equals_one_process_over_the_global_batch(tmp_path, monkeypatch):
    """Two gloo processes, each on its half of the 84-image global batch, with DDP averaging the gradients, take
    the single-process step: the same gradients (float32; the ranks sum in another order, hence the tolerance)
    and the same centers after the center rule (DenseNet-CL Eq. 4/6 over the gathered global batch).
    BatchNorm aside: both runs normalise with the running statistics, since per-rank batch statistics (the
    default, see ferlib.train.distributed) differ from the global batch's by design; torch's SyncBatchNorm,
    which would make them equal, runs on GPUs only."""
    import torch.multiprocessing as mp

    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(1)
    single = _first_step(tmp_path / "single")
    mp.spawn(_rank_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert single["batch"] == 84 and [r["batch"] for r in ranks] == [42, 42]
    assert single["grads"].keys() == ranks[0]["grads"].keys()
    moved = 0
    for name, g in single["grads"].items():
        torch.testing.assert_close(ranks[0]["grads"][name], ranks[1]["grads"][name], rtol=0, atol=0)  # all-reduced
        torch.testing.assert_close(ranks[0]["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
        moved += bool(g.abs().max() > 0)
    assert moved > len(single["grads"]) // 2  # the gradients compared are not all zero
    assert torch.equal(ranks[0]["centers"], ranks[1]["centers"]) and ranks[0]["centers"].abs().max() > 0
    torch.testing.assert_close(ranks[0]["centers"], single["centers"], rtol=1e-4, atol=1e-6)


# -- torchrun end to end ------------------------------------------------------------------------
def _torchrun(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FERLIB_DATA_DIR", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(FERLIB_RUNS_DIR=str(tmp_path / "runs"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
           "-m", "ferlib", "train", "tiny-densenet-demo", "--device", "cpu", "--precision", "fp32",
           "--threads", "1", "--out", str(tmp_path / "out"), *extra]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_two_processes_resume_after_a_kill_and_write_one_results_file(tmp_path):
    """tiny-densenet-demo, quick: 210 Training faces, global batch 128 (64 per process), 2 batches per epoch,
    2 epochs.  The first run ends after 3 steps without saving (--stop-after-steps: a kill in epoch 2); the
    same command resumes both processes from rank 0's end-of-epoch-1 checkpoint and finishes."""
    killed = _torchrun(tmp_path, "--stop-after-steps", "3")
    log = killed.stdout + killed.stderr
    assert killed.returncode != 0 and log.count("stopped after 3 steps") == 1, log[-3000:]  # rank 0 says it
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # no result from a killed run
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "latest.pt").is_file() and (run_dir / "epoch_001.pt").is_file()

    done = _torchrun(tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert log.count("resuming tiny-densenet-demo") == 1 and "after epoch 1 (epoch 2 of 2, step 0)" in log, log[-3000:]
    assert log.count("selected epoch") == 1  # rank 0 alone reports
    (results_file,) = (tmp_path / "out").iterdir()
    results = json.loads(results_file.read_text())
    assert [h["epoch"] for h in results["history"]] == [1, 2] and results["epochs_run"] == 2
    assert results["provenance"]["distributed"] == {"world_size": 2, "backend": "gloo", "sync_batchnorm": False,
                                                     "launcher": "torchrun", "global_batch": 128,
                                                     "per_process_batch": 64}
    # the loss sums are summed over both processes: about ln 7 = 1.95 per image after 4 steps, not half of it
    assert all(1.5 < h["train_loss"] < 2.5 for h in results["history"]), results["history"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "epoch_001.pt", "epoch_002.pt", "latest.pt"]
