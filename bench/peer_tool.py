#!/usr/bin/env python3
"""Run litert-benchmark's own code (ai_edge_litert.tools.benchmark_litert_model.run_benchmark) with two
visible changes, so it can be compared with benchbot to better than its printed precision:

* its results are not rounded: the tool rounds every latency in its JSON to 0.01 ms (1 % of a 1 ms
  model, 20 % of a 0.05 ms one); `round` is shadowed in the tool's module only;
* `--inputs benchbot` fills inputs with the agent's seeded random_input instead of the tool's own.
  The tool draws every integer input from [-128, 127], so a model that takes int32 token ids fails
  in GATHER ("gather index out of bounds") before its first run; benchbot draws ids from [0, 100).

Everything else (CompiledModel, CPU accelerator, buffers, warmup, the timed loop around
run_by_name) is the tool's code, unchanged. Prints the tool's result dict as the last stdout line.

    python bench/peer_tool.py --model M --num_threads 1 --num_runs 2000 --warmup_runs 10 [--inputs tool|benchbot]
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "benchbot" / "agent.py"


def main() -> int:
    argv = sys.argv[1:]
    inputs = "tool"
    if "--inputs" in argv:
        at = argv.index("--inputs")
        inputs = argv[at + 1]
        del argv[at:at + 2]
    from ai_edge_litert.tools import benchmark_litert_model as tool

    tool.round = lambda value, digits=None: value  # full precision in its result dict
    if inputs == "benchbot":
        import numpy as np

        spec = importlib.util.spec_from_file_location("benchbot_agent_for_inputs", AGENT)
        agent = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(agent)
        rng = np.random.default_rng(0)

        def fill(buffer, details):
            dtype = tool.get_numpy_dtype(details.get("dtype", "float32"))
            detail = {"dtype": np.dtype(dtype).type, "name": details.get("name", "?")}
            buffer.write(agent.random_input(np, rng, detail, tuple(details.get("shape", [1]))))

        tool.fill_random_input = fill
    sys.argv = ["litert-benchmark", *argv]
    args = tool.parse_args()
    printed = io.StringIO()
    with redirect_stdout(printed):
        result = tool.run_benchmark(args)
    result["inputs"] = inputs
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
