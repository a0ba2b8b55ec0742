"""Which code made a result: the commit a run's config.json and an evaluation's record carry."""

from __future__ import annotations

import os
import subprocess

from rnnreg.config import PACKAGE_ROOT


def git_commit() -> str | None:
    """The commit of the checkout rnnreg runs from (+ "-dirty" when it has local changes).

    $RNNREG_GIT_COMMIT names it where the code is a copy whose .git is missing or stale (the
    copy a lent GPU machine gets).
    """
    if os.environ.get("RNNREG_GIT_COMMIT"):
        return os.environ["RNNREG_GIT_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_ROOT,
                               capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
