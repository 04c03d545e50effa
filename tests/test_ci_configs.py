"""`.ci/run`, `.travis.yml` and the GitHub Actions workflow run the README's test command.

`.ci/run` verbatim, inside a fresh virtualenv it creates; the two CI configs with
`--only <part>` per matrix job, and their parts together cover every part
`tests/run_all.py` runs by default.
"""
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import run_all

COMMAND = run_all.TEST_COMMAND


def default_parts():
    return set(run_all.DEFAULT_PARTS.split(","))


def test_readme_and_ci_run_hold_the_command():
    assert f"```bash\n{COMMAND}\n```" in (ROOT / "README.md").read_text()
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert ci_run.rstrip().endswith(COMMAND)
    # ... run in a virtualenv of its own, as a user would, not the machine's packages.
    before = ci_run.rstrip()[:-len(COMMAND)]
    assert re.search(r"-m venv ", before) and re.search(r'\. "\$venv/bin/activate"', before)


def test_default_parts_are_the_checks_and_the_pytest_runs():
    assert default_parts() == set(run_all.CHECKS) | set(run_all.RUNS)


def covered(commands):
    parts = set()
    for command in commands:
        assert command.startswith(COMMAND + " --only "), command
        parts.update(command.split("--only ")[1].strip('"').split(","))
    return parts


@pytest.mark.parametrize("config", [".travis.yml", ".github/workflows/tests.yml"])
def test_ci_configs_run_the_command_on_every_part(config):
    text = (ROOT / config).read_text()
    data = yaml.safe_load(text)
    if config == ".travis.yml":
        commands = [line.replace('"$PART"', part) for line in data["script"]
                    for part in (job.split("=", 1)[1] for job in data["env"]["jobs"])]
    else:
        job = data["jobs"]["test"]
        run = next(step["run"] for step in job["steps"] if "run" in step)
        commands = [run.replace('"${{ matrix.part }}"', part)
                    for part in job["strategy"]["matrix"]["part"]]
    assert covered(commands) == default_parts()
