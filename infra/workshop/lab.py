"""The workshop's labs: a starting point in a scratch copy, and a check that says what is missing.

    make lab 3          # .labs/lab-03: this repository as committed, plus the lab's starting point
    make check-lab 3    # the lab's checks, run against .labs/lab-03

A lab lives in docs/workshop/labs/NN-<slug>/: README.md (the page), start.patch (turns the
repository into the starting point), solution.patch (the reference solution, on top of the
starting point) and check/ (pytest files, run with the lab copy as the working directory and its
packages first on the path). The participant's own work is never touched: a lab is a copy, with
its own git history (one commit, "starting point"), so `git diff` shows what they did and
`git checkout .` starts again.

`verify N` is what `make test` runs for every lab: the check must fail on the starting point and
pass with the solution, so no lab can rot.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "docs" / "workshop" / "labs"
SCRATCH = REPO / ".labs"
PYTEST = REPO / ".venv" / "bin" / "pytest"
FAILURE = re.compile(r"^\S+:\d+: (?:\w+(?:Error|Exception)|Failed): (?P<message>.+)$")


class LabError(Exception):
    """One line for the participant, not a traceback."""


def lab_dir(number: int) -> Path:
    found = sorted(LABS.glob(f"{number:02d}-*"))
    if not found:
        available = ", ".join(str(int(path.name[:2])) for path in sorted(LABS.glob("[0-9][0-9]-*")))
        raise LabError(f"there is no lab {number} (the labs are {available})")
    return found[0]


def prepare(number: int, target: Path, *, solution: bool = False) -> Path:
    """The repository as committed (HEAD), plus the lab's starting point (and its solution)."""
    lab = lab_dir(number)
    if target.exists():
        raise LabError(f"{target} exists: it may hold your work. Delete it to start lab {number} afresh.")
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    # Its own repository first: inside this one (.labs/), git would apply the patch to ours.
    _git(target, "init", "-q")
    _apply(lab / "start.patch", target)
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", f"lab {number}: starting point")
    if solution:
        _apply(lab / "solution.patch", target)
    return target


def check(number: int, tree: Path, *, quiet: bool = False) -> bool:
    """Runs the lab's checks against `tree`; True when every one passes."""
    lab = lab_dir(number)
    if not tree.is_dir():
        raise LabError(f"{tree} does not exist: run `make lab {number}` first")
    # The lab copy's packages come before the workspace's (installed as editable links to this
    # repository): the checks see the participant's code, not ours.
    sources = [str(path) for path in sorted(tree.glob("libs/*/src")) + sorted(tree.glob("services/*/src"))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sources), "LAB_TREE": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [str(PYTEST), "-q", "--no-header", "-p", "no:cacheprovider", "--tb=line", "-rN", "--rootdir", str(lab / "check"), str(lab / "check")]
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if not quiet:
        print(_plain(result.stdout), end="")
        print(f"\nlab {number}: {'done, every check passes' if result.returncode == 0 else 'not done yet: see what is missing above'}")
    return result.returncode == 0


def verify(number: int) -> None:
    """The check fails on the starting point and passes with the solution."""
    with tempfile.TemporaryDirectory(prefix=f"lab-{number:02d}-") as scratch:
        tree = prepare(number, Path(scratch) / "tree")
        if check(number, tree, quiet=True):
            raise LabError(f"lab {number}: the check passes on the starting point, so it checks nothing")
        _apply(lab_dir(number) / "solution.patch", tree)
        if not check(number, tree, quiet=True):
            check(number, tree)  # print why
            raise LabError(f"lab {number}: the check fails with the reference solution")


def _plain(pytest_output: str) -> str:
    """What is missing, once each: pytest's --tb=line gives `path:line: AssertionError: what is
    missing` per failed check; the participant needs the last part."""
    missing: list[str] = []
    summary = ""
    for line in pytest_output.splitlines():
        found = FAILURE.match(line)
        if found:
            message = found.group("message").strip()
            if message not in missing:
                missing.append(message)
        elif line.startswith(("ERROR", "FAILED")) or " passed" in line or " failed" in line or " error" in line:
            summary = line
    listed = "".join(f"  - {message}\n" for message in missing)
    return f"{listed}{summary}\n" if summary else listed


def _apply(patch: Path, tree: Path) -> None:
    if patch.stat().st_size == 0:
        return
    result = subprocess.run(["git", "apply", "--whitespace=nowarn", str(patch)], cwd=tree, capture_output=True, text=True)
    if result.returncode != 0:
        raise LabError(f"{patch.relative_to(REPO)} does not apply to this version of the code: {result.stderr.strip()}")


def _git(tree: Path, *args: str) -> None:
    identity = ["-c", "user.name=Concerto workshop", "-c", "user.email=workshop@concerto.invalid"]
    subprocess.run(["git", *identity, *args], cwd=tree, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["prepare", "check", "verify", "solve"])
    parser.add_argument("number", type=int, help="the lab's number (make lab 3)")
    parser.add_argument("--dir", type=Path, help="where the lab's copy lives (default .labs/lab-NN)")
    args = parser.parse_args()
    tree = args.dir or SCRATCH / f"lab-{args.number:02d}"
    try:
        if args.action == "prepare":
            prepare(args.number, tree)
            page = lab_dir(args.number) / "README.md"
            print(f"lab {args.number} is ready in {tree.relative_to(REPO) if tree.is_relative_to(REPO) else tree}")
            print(f"  the page: {page.relative_to(REPO)};  when done: make check-lab {args.number}")
        elif args.action == "check":
            sys.exit(0 if check(args.number, tree) else 1)
        elif args.action == "solve":  # the reference solution, in a copy of its own
            prepare(args.number, tree, solution=True)
            print(f"lab {args.number}'s reference solution is in {tree}")
        else:
            verify(args.number)
            print(f"lab {args.number}: the check fails on the starting point and passes with the solution")
    except LabError as exc:
        sys.exit(f"lab: {exc}")


if __name__ == "__main__":
    main()
