"""(Re)record the golden answers: `.venv/bin/python -m tests.golden.record`.

Runs every case against a fresh daemon and writes `tests/golden/answers/<area>.json`.
Record only from a commit whose behaviour is the reference (before a refactor), and review
the diff of the answers before committing them.
"""

from __future__ import annotations

import sys
from collections import Counter

from tests.golden.cases import CASES, Cli
from tests.golden.harness import golden_daemon, run_cases, write_answers


def main() -> int:
    with golden_daemon() as daemon:
        run = run_cases(daemon)
    paths = write_answers(run)
    kinds = Counter("cli" if isinstance(c, Cli) else "http" for c in CASES)
    errors = sum(1 for c in CASES if ".err." in f".{c.name}" or c.name.startswith(
        ("err.", "404", "405")))
    print(f"recorded {len(CASES)} cases ({kinds['http']} HTTP, {kinds['cli']} CLI, "
          f"{errors} error cases) in {run.seconds:.1f}s into {len(paths)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
