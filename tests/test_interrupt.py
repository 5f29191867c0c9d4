"""Ctrl-C during training: a resumable checkpoint, one line that says where and how to resume, exit 130;
the same command resumes and says from where."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Output:
    """A child's stderr, read as it comes."""

    def __init__(self, stream):
        self.text = ""
        self._t = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._t.start()

    def _read(self, stream):
        for chunk in iter(lambda: stream.read(1), ""):
            self.text += chunk

    def wait_for(self, needle: str, timeout: float) -> bool:
        end = time.time() + timeout
        while time.time() < end:
            if needle in self.text:
                return True
            time.sleep(0.2)
        return False


def start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FERLIB_DATA_DIR"}  # the synthetic faces
    env["FERLIB_RUNS_DIR"] = str(tmp_path / "runs")
    cmd = [sys.executable, "-m", "ferlib", "train", "tiny-densenet-demo", "--minutes", "3", "--device", "cpu",
           "--precision", "fp32", "--threads", "1", "--out", str(tmp_path / "out")]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p, Output(p.stdout)


def test_ctrl_c_saves_and_says_how_to_resume(tmp_path):
    p, out = start(tmp_path)
    try:
        assert out.wait_for("batch/s", 240), out.text[-2000:]  # training steps are running
        assert "no checkpoint" in out.text and "starting at epoch 1" in out.text
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=120) == 130, out.text[-2000:]
    finally:
        p.kill()
    time.sleep(0.5)
    assert "Traceback" not in out.text
    assert "interrupted at epoch 1 of" in out.text and "run the same command to resume" in out.text
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "latest.pt").is_file()

    p, out = start(tmp_path)  # the same command again
    try:
        assert out.wait_for("resuming tiny-densenet-demo", 240), out.text[-2000:]
        assert "(epoch 1 of" in out.text and "step " in out.text
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=120) == 130
    finally:
        p.kill()


def test_a_long_epoch_budget_warns_early(capsys):
    """The warning names the estimated hours and the wall-clock budget (a fake clock: 0.2 s per step)."""
    from types import SimpleNamespace

    from ferlib.train.callbacks import LongRunWarning
    from ferlib.train.distributed import SingleProcess

    def run(warn_hours):
        now = [0.0]
        trainer = SimpleNamespace(state=SimpleNamespace(steps=0, epoch=0, next_batch=0), epochs=100,
                                  name="densenet-bc", train_source=range(225), val_source=range(15), device="cpu",
                                  comm=SingleProcess())
        warn = LongRunWarning(warn_hours=warn_hours, skip_steps=1, timed_steps=2, clock=lambda: now[0])
        for step in range(1, 4):
            trainer.state.steps = trainer.state.next_batch = step
            now[0] += 0.2
            warn.on_step_end(trainer)
        return warn.estimate_hours, capsys.readouterr().out

    hours, out = run(2.0)  # 100 x 225 steps x 0.2 s + evaluation ~ 1.26 hours: no warning
    assert 1.2 < hours < 1.3 and "warning" not in out
    hours, out = run(0.5)
    assert "warning" in out and "about 1.3 hours" in out and "--minutes 60" in out
