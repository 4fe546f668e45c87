"""CPU per request of two checkouts' proxies side by side, alternating, on one mock.

Usage: python bench/ab.py TREE_A TREE_B [SECONDS] [ROUNDS] [SHAPES]
(SHAPES: a comma-separated subset of same, slide_1, slide_7; as bench/run.py's cached_path
sends them). Both proxies run with this interpreter, each tree's code on its PYTHONPATH;
each round swaps which goes first. Prints every run, then the medians and B/A.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench

from proxy.mock import MockSettings, start_mock

SHAPES = ("same", "slide_1", "slide_7")


async def main(trees: list[Path], seconds: int, rounds: int, wanted: list[str]) -> None:
    """Alternate wrk runs of each shape between the two trees' proxies; print the medians."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        mock = await start_mock(settings=MockSettings(org_size=500), cert_dir=directory)
        config = bench.write_config(mock, directory, 8)
        people = mock.graph.organisation.addresses()[:3]
        mark = bench.END_MARK
        shapes = {
            "same": {"schedules": people, "start": "2026-03-16T00:00:00Z",
                     "end": "2026-03-17T00:00:00Z"},
            "slide_1": {"schedules": people, "start": "2026-03-22T00:00:00Z", "end": mark},
            "slide_7": {"schedules": people, "start": "2026-03-16T00:00:00Z", "end": mark},
        }  # fmt: skip
        warm = {
            name: {**body, "end": "2026-03-23T00:00:00Z"} if body["end"] == mark else body
            for name, body in shapes.items()
        }
        cpu: dict[tuple[int, str], list[float]] = {(t, n): [] for t in (0, 1) for n in wanted}
        async with contextlib.AsyncExitStack() as stack:
            bases = []
            for tree in trees:
                bench.ROOT = tree
                port = bench.free_port()
                argv = bench.proxy_argv(config, port)
                bases.append(
                    await stack.enter_async_context(bench.server(argv, port, env=bench.PROXY_ENV))
                )
            for n in range(rounds):
                for name in wanted:
                    for t in (0, 1) if n % 2 == 0 else (1, 0):
                        async with aiohttp.ClientSession() as session:
                            await bench.post(session, bases[t], warm[name])
                        run = await bench.wrk_run(
                            bases[t] + "/v1/availability", json.dumps(shapes[name]), seconds,
                            directory, vary_end=name != "same",
                        )  # fmt: skip
                        cpu[(t, name)].append(run.cpu_us or 0.0)
                        print(f"round {n} {name:8} {trees[t]}  {run.cpu_us:7.1f} µs  "
                              f"{run.rps:7.0f} rps", flush=True)  # fmt: skip
        await mock.close()
    for name in wanted:
        a, b = statistics.median(cpu[(0, name)]), statistics.median(cpu[(1, name)])
        print(f"{name:8} A {a:6.1f} µs  B {b:6.1f} µs  B/A {b / a:.3f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            [Path(args[0]).resolve(), Path(args[1]).resolve()],
            int(args[2]) if len(args) > 2 else 6,
            int(args[3]) if len(args) > 3 else 4,
            args[4].split(",") if len(args) > 4 else list(SHAPES),
        )
    )
