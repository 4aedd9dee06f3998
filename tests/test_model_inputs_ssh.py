"""The three-input BERT-style model over real SSH (sshd on loopback): graph-aware ranges and a pushed input file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchbot.models.catalog import ZOO_DIR
from tests.test_fleet_ssh import FAST, Fleet, fleet  # noqa: F401 - the fixture is used by name

pytest_plugins = ["tests.sshd"]
BERT = ZOO_DIR / "tweet-bert3"
pytestmark = [pytest.mark.ssh,
              pytest.mark.skipif(not (BERT / "family.json").is_file(), reason="the tweet-bert3 family is missing")]


def test_bert_over_ssh_with_default_ranges_and_an_input_file(fleet: Fleet, tmp_path: Path) -> None:  # noqa: F811
    fleet.device("board")
    done = fleet.cli(["run", "--devices", "board", "--models", "tweet-bert3", "--variants", "fp32,int8",
                      "--min-seconds", "0", *FAST])
    assert done.returncode == 0, done.stderr
    run = fleet.load()
    for cell in run.cells:
        start = run.best(cell.key).first("cell_start")
        assert {i["key"]: (i["range"], i["why"]) for i in start["inputs"]}["token_type_ids"] == (
            [0, 2], "indices of GATHER table with 2 rows")
        assert start["partitions"] >= 1 and start["delegated_ops"] <= start["total_ops"]
        assert run.best(cell.key).first("accuracy")["n"] == 300
    data = np.load(BERT / "eval.npz")
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **{k[2:]: data[k][:5] for k in data.files if k.startswith("x_")})
    done = fleet.cli(["run", "--devices", "board", "--models", "tweet-bert3", "--variants", "dynamic",
                      "--input-data", str(inputs), "--no-accuracy", "--min-seconds", "0", *FAST])
    assert done.returncode == 0, done.stderr
    run = fleet.load()
    (cell,) = run.cells
    assert run.best(cell.key).first("cell_start")["input_samples"] == 5
