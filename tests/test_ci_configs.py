"""`.ci/run`, `.travis.yml` and the GitHub Actions workflow run the README's test command.

`.ci/run` verbatim; the two CI configs with `--only <part>` per matrix job, and
their parts together cover every part `tests/run_all.py` runs by default.
"""
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import run_all

COMMAND = 'pip install torch==2.13.0 && pip install -e ".[test]" && python tests/run_all.py'


def default_parts():
    parser_default = re.search(r'"--only",\s*default="([^"]+)"',
                               (ROOT / "tests" / "run_all.py").read_text()).group(1)
    return set(parser_default.split(","))


def test_readme_and_ci_run_hold_the_command():
    assert f"```bash\n{COMMAND}\n```" in (ROOT / "README.md").read_text()
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith(COMMAND)


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
