"""labgrid profiles without a board farm: validation of the [labgrid] table, and a missing labgrid is one sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchbot.profiles import ProfileError, parse_profile
from tests.conftest import REPO, write_profile

LAB = 'transport = "labgrid"\n[labgrid]\ncoordinator = "127.0.0.1:1"\n'


def test_labgrid_table_is_checked(profiles_dir: Path) -> None:
    good = parse_profile(write_profile(profiles_dir, "pi", LAB + 'tags = { board = "pi4" }\nwait_s = 3\n'))
    assert good.labgrid is not None and good.labgrid.tags == (("board", "pi4"),) and good.labgrid.wait_s == 3
    for body, problem in ((LAB, "labgrid.place' or labgrid.tags must be given"),
                          (LAB + 'place = "p"\ntags = { board = "x" }\n', "not both"),
                          ('transport = "labgrid"\n', "'labgrid' is required"),
                          (LAB + 'place = "p"\nwait = 3\n', "unknown key 'labgrid.wait'")):
        with pytest.raises(ProfileError, match=problem):
            parse_profile(write_profile(profiles_dir, "bad", body))


def test_missing_labgrid_is_one_sentence(profiles_dir: Path, cli_env: dict[str, str]) -> None:
    write_profile(profiles_dir, "farm", LAB + 'place = "p1"\n')
    blocked = "import sys; sys.modules['labgrid'] = None; from benchbot.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", blocked, "run", "--devices", "farm"], env=cli_env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "benchbot: labgrid devices need labgrid: pip install 'benchbot[lab]'"
