"""Delegation figures per cell, checked against models whose XNNPACK partitioning is known (tests/data)."""

from __future__ import annotations

import sys

import pytest

from benchbot import agent
from tests.conftest import REPO
from tests.test_model_inputs import RUNTIMES, run_agent, start_of

DATA = REPO / "tests" / "data"
KEYS = ("total_ops", "delegated_ops", "partitions", "undelegated_ops")


def figures(model: str, python: str, **job: object) -> dict:
    start = start_of(run_agent({"model_path": str(DATA / model), **job}, python))
    return {k: start[k] for k in KEYS}


@pytest.mark.parametrize("python", RUNTIMES, ids=lambda p: "litert" if p == sys.executable else "tflite214")
def test_fully_delegated_model(python: str) -> None:
    assert figures("full_delegate.tflite", python) == {
        "total_ops": 2, "delegated_ops": 2, "partitions": 1, "undelegated_ops": {}}


@pytest.mark.parametrize("python", RUNTIMES, ids=lambda p: "litert" if p == sys.executable else "tflite214")
def test_an_unsupported_op_splits_the_graph(python: str) -> None:
    assert figures("split_delegate.tflite", python) == {
        "total_ops": 3, "delegated_ops": 2, "partitions": 2, "undelegated_ops": {"CUMSUM": 1}}


@pytest.mark.parametrize("python", RUNTIMES, ids=lambda p: "litert" if p == sys.executable else "tflite214")
def test_without_xnnpack_nothing_is_delegated(python: str) -> None:
    assert figures("split_delegate.tflite", python, xnnpack=False) == {
        "total_ops": 3, "delegated_ops": 0, "partitions": 0, "undelegated_ops": {"CUMSUM": 1, "FULLY_CONNECTED": 2}}


def test_partition_membership_follows_its_tensors() -> None:
    """A partition holds the nodes between the tensors it consumes and produces, not every node."""
    ops = [
        {"index": 0, "op": "CONV_2D", "inputs": [0, 10], "outputs": [1]},
        {"index": 1, "op": "GATHER", "inputs": [11, 1], "outputs": [2]},
        {"index": 2, "op": "ADD", "inputs": [2, 12], "outputs": [3]},
        {"index": 3, "op": "MUL", "inputs": [3, 13], "outputs": [4]},
        {"index": 4, "op": "DELEGATE", "inputs": [0, 10], "outputs": [1]},
        {"index": 5, "op": "DELEGATE", "inputs": [2, 12, 13], "outputs": [4]},
    ]
    assert agent.delegation_facts(ops) == {
        "total_ops": 4, "delegated_ops": 3, "partitions": 2, "undelegated_ops": {"GATHER": 1}}
    assert agent.delegation_facts(None)["partitions"] is None


def test_report_wording() -> None:
    from benchbot import delegation

    row = {"total_ops": 95, "delegated_ops": 56, "partitions": 14,
           "undelegated_ops": {"GATHER": 6, "RESHAPE": 5, "REDUCE_PROD": 4, "ADD": 3, "CAST": 1}}
    assert delegation.sentence("int8", row) == ("int8: 14 XNNPACK partitions (56 of 95 ops); GATHER×6, RESHAPE×5, "
                                                "REDUCE_PROD×4 and 2 more op types on built-in kernels")
    assert delegation.compact(row) == "56/95 in 14"
    off = {"total_ops": 3, "delegated_ops": 0, "partitions": 0, "undelegated_ops": {"CUMSUM": 1}}
    assert delegation.sentence("fp32", off) == "fp32: not delegated; all 3 ops on built-in kernels"
    assert delegation.compact(off) == "0/3"
    full = {"total_ops": 2, "delegated_ops": 2, "partitions": 1, "undelegated_ops": {}}
    assert delegation.sentence("fp32", full) == "fp32: 1 XNNPACK partition (2 of 2 ops); every op delegated"
    assert delegation.compact({"total_ops": float("nan")}) == "" and delegation.sentence("x", {}) == ""
