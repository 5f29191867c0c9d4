"""The kernel a graded submission runs in: ipykernel under resource limits (Linux/macOS).

``python -m ferlib.labs.kernel --memory-mb M --cpu-s S -f CONNECTION_FILE`` sets the limits
with :func:`resource.setrlimit` on *this* process, then starts an ordinary IPython kernel in
it, so everything the student's notebook runs (and every process it starts) inherits them:

* ``RLIMIT_DATA`` = M MiB: heap and private memory (an allocation past it raises
  ``MemoryError``).  Not ``RLIMIT_AS``: torch reserves far more address space than it uses
  and fails to import under a few GiB of ``RLIMIT_AS``.
* ``RLIMIT_CPU`` = S seconds of CPU time (a backstop; the wall-clock limit is enforced by the
  grading run, which kills the kernel);
* ``RLIMIT_FSIZE`` = 1 GiB per written file, ``RLIMIT_CORE`` = 0.

These limits stop runaway code, not an attacker (see :mod:`ferlib.labs.grade`).
"""
from __future__ import annotations

import argparse
import resource
import sys


def set_limits(memory_mb: int, cpu_s: int) -> None:
    """Lower this process's limits (never raise a hard limit the parent set lower)."""
    def lower(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))

    lower(resource.RLIMIT_DATA, int(memory_mb) << 20)
    lower(resource.RLIMIT_CPU, int(cpu_s))
    lower(resource.RLIMIT_FSIZE, 1 << 30)
    lower(resource.RLIMIT_CORE, 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ferlib.labs.kernel")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-s", type=int, required=True)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    set_limits(args.memory_mb, args.cpu_s)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=rest)


if __name__ == "__main__":
    main()
