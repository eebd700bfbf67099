"""`python -m bench all|ingest|query|behaviour|export|live|dashboard|soak|scale|adversarial|
clickhouse|formulas|enrich|reports|web|people|page_steps|groups|person_props|erasure [args...]`.

Each name runs `bench/<name>.py:main(argv)` (which prints one table); `all` runs every
benchmark present, in order, with the same arguments. Modules not written yet are skipped
with a message rather than failing the run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time

BENCHMARKS = ("ingest", "query", "behaviour", "export", "live", "dashboard", "soak", "scale",
              "adversarial", "clickhouse", "formulas", "enrich", "reports", "web",
              "people", "page_steps", "groups", "person_props", "erasure")
# soak (minutes), scale (100M events), adversarial (#24, minutes) and clickhouse (#17) run
# on request
ALL = ("ingest", "query", "behaviour", "export", "live", "dashboard", "enrich")


def run(name: str, argv: list[str]) -> int:
    if importlib.util.find_spec(f"bench.{name}") is None:
        print(f"bench {name}: not present yet (bench/{name}.py), skipped", file=sys.stderr)
        return 0
    module = importlib.import_module(f"bench.{name}")
    started = time.perf_counter()
    print(f"== bench {name} ==", file=sys.stderr, flush=True)
    code = module.main(argv)
    print(f"== bench {name}: {time.perf_counter() - started:.1f}s ==", file=sys.stderr,
          flush=True)
    return int(code or 0)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nbenchmarks: " + ", ".join(BENCHMARKS) + " (all = " + ", ".join(ALL) + ")")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "all":
        failed = [n for n in ALL if run(n, rest) != 0]
        if failed:
            print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1 if failed else 0
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; choose from all, " + ", ".join(BENCHMARKS),
              file=sys.stderr)
        return 2
    return run(name, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
