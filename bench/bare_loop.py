#!/usr/bin/env python3
"""The reference timer: a bare loop of perf_counter_ns around invoke(), with nothing else running.

No telemetry thread, no JSON until the end, no list of start times, no elapsed-time check other than
the end of the previous sample: the least a Python program can do to time invoke(). Inputs are the
agent's own (its seeded random_input, so both see the same values); the interpreter, thread count and
warmup are the same as the agent's. Prints one JSON line: the loop's latencies in ns.

    python bench/bare_loop.py MODEL --threads 1 --warmup-runs 10 --warmup-seconds 0.5 --seconds 2 [--api compiled]

--api compiled times CompiledModel.run_by_name (the API litert-benchmark uses) instead of
Interpreter.invoke(), with the same inputs, to separate the API path from the tool.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "benchbot" / "agent.py"


def agent_inputs():
    """The agent's random_input, loaded from its file (a pure function; nothing of the agent runs)."""
    spec = importlib.util.spec_from_file_location("benchbot_agent_for_inputs", AGENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.random_input


def interpreter_invoke(model: str, threads: int, seed: int):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    random_input = agent_inputs()
    for d in interpreter.get_input_details():
        interpreter.set_tensor(d["index"], random_input(np, rng, d, tuple(d["shape"])))
    return interpreter.invoke


def compiled_invoke(model: str, threads: int, seed: int):
    """CompiledModel.run_by_name with the agent's inputs, set up as litert-benchmark sets it up."""
    import numpy as np
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.environment import Environment, EnvironmentOptions
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.options import CpuOptions, Options

    env = Environment.create(options=EnvironmentOptions())
    options = Options(hardware_accelerators=HardwareAccelerator(HardwareAccelerator.CPU),
                      cpu_options=CpuOptions(num_threads=threads))
    compiled = CompiledModel.from_file(model, environment=env, options=options)
    signature = list(compiled.get_signature_list())[0]
    inputs = {n: compiled.create_input_buffer_by_name(signature, n)
              for n in compiled.get_input_tensor_details(signature)}
    outputs = {n: compiled.create_output_buffer_by_name(signature, n)
               for n in compiled.get_output_tensor_details(signature)}
    # The same values as the agent: its inputs, drawn in the Interpreter's input order, matched by tensor index.
    probe = Interpreter(model_path=model)
    rng = np.random.default_rng(seed)
    random_input = agent_inputs()
    by_index = {d["index"]: random_input(np, rng, d, tuple(d["shape"])) for d in probe.get_input_details()}
    for name, detail in compiled.get_input_tensor_details(signature).items():
        inputs[name].write(by_index[detail["index"]])
    del probe
    run = compiled.run_by_name

    def invoke():
        run(signature, inputs, outputs)

    invoke.keep = (env, compiled, inputs, outputs)  # keep the buffers alive with the closure
    return invoke


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup-runs", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--min-runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api", choices=["interpreter", "compiled"], default="interpreter")
    args = parser.parse_args()

    make = compiled_invoke if args.api == "compiled" else interpreter_invoke
    invoke = make(args.model, args.threads, args.seed)
    clock = time.perf_counter_ns
    invoke()  # first inference, as the agent does before its warmup

    begin = clock()
    runs = 0
    warm_ns = int(args.warmup_seconds * 1e9)
    while runs < args.warmup_runs or clock() - begin < warm_ns:
        invoke()
        runs += 1

    latencies = []
    append = latencies.append
    loop_ns = int(args.seconds * 1e9)
    begin = t1 = clock()
    while t1 - begin < loop_ns or len(latencies) < args.min_runs:
        t0 = clock()
        invoke()
        t1 = clock()
        append(t1 - t0)
    print(json.dumps({"latency_ns": latencies, "warmup_runs": runs, "loop_ns": t1 - begin}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
