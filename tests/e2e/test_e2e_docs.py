"""Executable docs: the shell examples in README.md and in the workshop's pages
(docs/workshop/**/*.md) are run against the stack, so the commands a reader copies work.

The rule, for every page:

- A fenced block tagged ```bash is **run** when it talks to the stack: its text mentions
  `127.0.0.1` or `localhost`. Other blocks (```sh, ```console, `make run`, editing code, ...) are
  not run.
- A ```bash block right after the line `<!-- not run: why -->` (blank lines between are allowed)
  is not run either, even if it mentions the stack.
- The blocks a page runs are run top to bottom in ONE bash session (a variable one block sets is
  there for the next), from the repository's root, after `set -euo pipefail`, with `curl` a shell
  function that fails on an HTTP error (`command curl --fail-with-body --show-error "$@"`).
  Every command must succeed; a page must put back whatever it switches off (a payment gateway's
  faults, a paused consumer). Whatever happens, the payment gateways' faults are cleared and every
  consumer restored after each page (the `payment_faults` and `consumer_controls` fixtures), so a
  failing page leaves nothing broken for the tests after it.
- The examples use the local stack's addresses as written (the gateway on 127.0.0.1:8080): with
  GATEWAY_URL pointing elsewhere the pages are skipped. A page with no block to run is skipped.
- Pages are found when the test is collected, one test per page: a new lab page is picked up
  without touching this file.

On failure the message names the page, the block (its number and line), shows the block and
what it printed (stdout and stderr together), and the command that failed.

The tests at the end run the runner on tiny pages of its own (a failing block must fail, a
block after the marker is skipped, ...) so this check can fail.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")
STACK_ADDRESS = re.compile(r"127\.0\.0\.1|localhost")
NOT_RUN = re.compile(r"^\s*<!--\s*not run\b.*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
PAGE_TIMEOUT = 600  # seconds for one page's blocks, all together
MARK = "@@concerto-docs-block"

PRELUDE = f"""\
set -euo pipefail
# curl fails on an HTTP error, showing the answer. A page's own -f/--fail is dropped (curl refuses
# it beside --fail-with-body, which fails the same way and shows the body too).
curl() {{
  local arg args=()
  for arg in "$@"; do
    if [[ $arg == --fail ]]; then continue; fi
    if [[ $arg =~ ^-[a-zA-Z]+$ && $arg == *f* ]]; then arg=${{arg//f/}}; [[ $arg == - ]] && continue; fi
    args+=("$arg")
  done
  command curl --fail-with-body --show-error "${{args[@]}}"
}}
trap 'echo "{MARK}-failed $? $BASH_COMMAND" >&2' ERR
"""


def pages() -> list[Path]:
    """README.md and every workshop page, as they are now."""
    return [ROOT / "README.md", *sorted((ROOT / "docs" / "workshop").glob("**/*.md"))]


# --- reading a page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    number: int  # 1, 2, ... among the page's ```bash blocks
    line: int  # where its fence opens in the page
    source: str
    run: bool
    why: str  # why it is run or not


def blocks(markdown: str) -> list[Block]:
    """Every ```bash block of a page, each with whether the rule runs it."""
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening or not opening["lang"]:
            i += 1
            continue
        indent, lang, start = opening["indent"], opening["lang"], i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1  # the closing fence
        if lang != "bash":
            continue
        source = "\n".join(body)
        before = next((line for line in reversed(lines[:start]) if line.strip()), "")
        if NOT_RUN.match(before):
            run, why = False, before.strip()
        elif STACK_ADDRESS.search(source):
            run, why = True, "talks to the stack"
        else:
            run, why = False, "does not mention 127.0.0.1 or localhost"
        found.append(Block(len(found) + 1, start + 1, source, run, why))
    return found


# --- running a page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str  # what went wrong, for a person; empty when ok
    ran: int  # how many blocks were run


def script(to_run: list[Block]) -> str:
    parts = [PRELUDE]
    for block in to_run:
        parts.append(f"printf '\\n{MARK} %s\\n' {block.number}\n{block.source}\n")
    return "\n".join(parts)


def run_page(name: str, markdown: str, *, timeout: float = PAGE_TIMEOUT, cwd: Path = ROOT) -> Outcome:
    to_run = [block for block in blocks(markdown) if block.run]
    if not to_run:
        return Outcome(True, "", 0)
    try:
        done = subprocess.run(
            ["bash", "-c", script(to_run)],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
        )
        output, failure = done.stdout, (f"exit status {done.returncode}" if done.returncode else "")
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout or ""
        output, failure = (out.decode(errors="replace") if isinstance(out, bytes) else out), f"timed out after {timeout:g} s"
    if not failure:
        return Outcome(True, "", len(to_run))
    return Outcome(False, _explain(name, to_run, output, failure), len(to_run))


def _explain(name: str, to_run: list[Block], output: str, failure: str) -> str:
    """Which block failed, its source and what it printed."""
    pieces = re.split(rf"^{MARK} (\d+)$", output, flags=re.MULTILINE)
    reached = {int(number): text for number, text in zip(pieces[1::2], pieces[2::2], strict=True)}
    by_number = {block.number: block for block in to_run}
    if not reached:
        return f"{name}: the bash session failed before its first block ({failure}):\n{output}"
    number = max(reached)
    block, printed = by_number[number], reached[number]
    command = re.findall(rf"^{MARK}-failed (\d+) (.*)$", printed, flags=re.MULTILINE)
    printed = re.sub(rf"^{MARK}-failed .*\n?", "", printed, flags=re.MULTILINE).strip("\n")
    return (
        f"{name}: ```bash block {block.number} (line {block.line}) failed: {failure}"
        + (f"; the last command run: `{command[-1][1]}` (status {command[-1][0]})" if command else "")
        + f"\n--- the block ---\n{block.source}\n--- what it printed ---\n{printed or '(nothing)'}\n"
        f"(the page's blocks run in one bash session with `set -euo pipefail`; see tests/e2e/test_e2e_docs.py)"
    )


# --- one test per page ------------------------------------------------------------------------


@pytest.mark.timeout(PAGE_TIMEOUT + 120)
@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
async def test_the_shell_examples_of_a_page_work(page: Path, payment_faults, consumer_controls):
    if GATEWAY_URL != "http://127.0.0.1:8080":
        pytest.skip(f"the pages' examples talk to the local stack at 127.0.0.1:8080, GATEWAY_URL is {GATEWAY_URL}")
    name = str(page.relative_to(ROOT))
    markdown = page.read_text()
    if not any(block.run for block in blocks(markdown)):
        pytest.skip(f"{name}: no ```bash block talks to the stack")
    outcome = await asyncio.to_thread(run_page, name, markdown)
    assert outcome.ok, outcome.message


# --- the runner itself ------------------------------------------------------------------------


SAMPLE = """\
# A sample

```bash
make run   # not run: no stack address
```

```bash
GREETING=hello   # sets a variable for the next block; talks to 127.0.0.1 (says the rule)
```

<!-- not run: shows what a failure looks like -->

```bash
false   # 127.0.0.1
```

```bash
test "$GREETING" = hello && echo "seen on localhost: $GREETING"
```
"""


def test_the_rule_picks_the_blocks_that_talk_to_the_stack():
    found = blocks(SAMPLE + "\n```sh\ncurl http://127.0.0.1:8080\n```\n\n   ```bash\n   echo localhost\n   ```\n")
    assert [(b.number, b.run) for b in found] == [(1, False), (2, True), (3, False), (4, True), (5, True)]
    assert found[2].why == "<!-- not run: shows what a failure looks like -->"
    assert found[4].source == "echo localhost", "an indented block (in a list) is dedented"


def test_a_passing_page_passes_and_its_blocks_share_one_session():
    outcome = run_page("sample.md", SAMPLE)
    assert outcome.ok, outcome.message
    assert outcome.ran == 2


@pytest.mark.parametrize(
    ("failing", "why"),
    [
        ("false", "a failing command"),
        ("echo $UNSET_VARIABLE", "an unset variable (set -u)"),
        ("false | cat", "a failing command in a pipeline (pipefail)"),
    ],
)
def test_a_failing_block_fails_and_says_where(failing, why):
    page = SAMPLE + f"\n```bash\necho 'before the failure on 127.0.0.1'\n{failing}\necho 'never printed'\n```\n"
    outcome = run_page("sample.md", page)
    assert not outcome.ok, f"{why} did not fail the page"
    assert "sample.md: ```bash block 5 (line 21) failed" in outcome.message, outcome.message
    assert "before the failure on 127.0.0.1" in outcome.message and "never printed" not in outcome.message.split("--- what it printed ---")[1]
    assert failing in outcome.message, outcome.message


def test_a_block_that_hangs_fails_at_the_timeout():
    outcome = run_page("slow.md", "```bash\necho waiting on localhost\nsleep 30\n```\n", timeout=1)
    assert not outcome.ok and "timed out after 1 s" in outcome.message, outcome.message
    assert "waiting on localhost" in outcome.message


@pytest.fixture
def http_server() -> Iterator[str]:
    """A local HTTP server that answers 200 on /ok and 404 on anything else (a free port)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 404)
            self.end_headers()
            self.wfile.write(b'{"status": "fine"}' if self.path == "/ok" else b'{"detail": "no such thing"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_curl_fails_on_an_http_error_and_shows_the_answer(http_server):
    assert run_page("ok.md", f"```bash\ncurl -s {http_server}/ok\n```\n").ok
    outcome = run_page("missing.md", f"```bash\ncurl -s {http_server}/missing\n```\n")
    assert not outcome.ok, "curl went on after a 404"
    assert "no such thing" in outcome.message and "404" in outcome.message, outcome.message


def test_a_pages_own_fail_flag_still_fails_on_an_http_error(http_server):
    """curl refuses -f beside --fail-with-body: the wrapper drops it, and fails all the same."""
    assert run_page("ok.md", f"```bash\ncurl -sf {http_server}/ok\ncurl --fail -sS {http_server}/ok\n```\n").ok
    for flags in ("-sf", "-fsS", "--fail -s", "-f"):
        outcome = run_page("missing.md", f"```bash\ncurl {flags} {http_server}/missing\n```\n")
        assert not outcome.ok and "404" in outcome.message, (flags, outcome.message)


def test_every_page_is_found():
    found = pages()
    assert ROOT / "README.md" in found
    assert all(page.suffix == ".md" for page in found)
    assert os.path.isdir(ROOT / "docs" / "workshop") == any("docs/workshop" in str(p) for p in found)
