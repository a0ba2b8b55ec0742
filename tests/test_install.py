"""The README's two commands, and the files they read, agree with each other.

A user meets the project through `pip install -r requirements.txt && streamlit run app.py`;
CI through `.ci/run`.  These tests keep the Python version, the pins and the commands in step.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def pins(path: Path) -> dict[str, str]:
    """name -> pinned version of each `name==version` line (comments and -r lines aside)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*([A-Za-z0-9_.-]+)==([^\s#;]+)", line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_the_readme_states_the_python_the_package_requires():
    minimum = re.fullmatch(r">=(3\.\d+)", PROJECT["requires-python"]).group(1)
    stated = re.search(r"\(Python (3\.\d+)\+", README)
    assert stated and stated.group(1) == minimum, (stated and stated.group(0), PROJECT["requires-python"])
    assert sys.version_info >= tuple(int(part) for part in minimum.split("."))


def test_requirements_pin_every_dependency_the_package_declares():
    pinned = pins(REPO / "requirements.txt")
    for requirement in PROJECT["dependencies"]:
        name, _, floor = re.match(r"([A-Za-z0-9_.-]+)\s*(>=\s*([\d.]+))?", requirement).groups()
        assert name.lower() in pinned, f"{name}: declared in pyproject.toml, not pinned in requirements.txt"
        if floor:
            version = tuple(int(p) for p in re.findall(r"\d+", pinned[name.lower()])[:2])
            assert version >= tuple(int(p) for p in floor.split(".")[:2]), (name, pinned[name.lower()], floor)


def test_the_dev_requirements_are_the_runtime_ones_plus_the_test_tools():
    dev = (REPO / "requirements-dev.txt").read_text(encoding="utf-8")
    assert re.search(r"^-r requirements\.txt$", dev, re.M)
    dev_pins = pins(REPO / "requirements-dev.txt")
    assert {"pytest", "playwright"} <= set(dev_pins)
    for extra in PROJECT["optional-dependencies"]["test"]:
        name = re.match(r"[A-Za-z0-9_.-]+", extra).group(0).lower()
        assert name in dev_pins, f"{name}: a test extra of pyproject.toml, not in requirements-dev.txt"


def test_the_two_commands_are_the_readme_s_and_ci_runs_the_second():
    install = "pip install -r requirements.txt && streamlit run app.py"
    test = "pip install -r requirements-dev.txt && python -m pytest"
    assert install in README and test in README
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "-r requirements-dev.txt" in ci and re.search(r"^python -m pytest$", ci, re.M)


def test_a_package_install_carries_every_subpackage_of_rnnreg():
    # `pip install .` copies only the packages pyproject.toml lists: a new subpackage left out
    # imports here (the checkout is on sys.path) and fails for whoever installed the package
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "rnnreg").rglob("__init__.py")}
    assert found == listed, f"in the tree, not in pyproject.toml: {sorted(found - listed)}; " \
                            f"listed, not in the tree: {sorted(listed - found)}"
