"""What the worker processes of one ``sluicegate serve --workers N`` share on their host.

The main process makes a private folder at start (removed at stop) and names it to the
workers in ``SLUICEGATE_RUN_DIR``; in it are the limit counters' file
(``policies.shared_counters``), the MCP sessions' (``mcp.session_file``) and a random
secret of this run. The secret signs what
must be signed alike by every worker when no secret is configured (file and batch ids,
dashboard sessions without an admin key): made per process, an id one worker gave would
be unknown to the next. It is kept in a file only the gateway's user can read, not in
an environment variable, which every process started from here would inherit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

RUN_DIR_ENV = "SLUICEGATE_RUN_DIR"
_SECRET = "secret"
_COUNTERS = "limits.db"


@contextlib.contextmanager
def shared_run() -> Iterator[Path]:
    """The run's folder, for as long as the workers serve (in the main process)."""
    folder = Path(tempfile.mkdtemp(prefix="sluicegate-"))  # mode 0700
    secret = folder / _SECRET
    with open(os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
        handle.write(os.urandom(32))
    os.environ[RUN_DIR_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def _folder() -> Path | None:
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def run_path(name: str) -> str | None:
    """A file of this run's folder; None outside ``serve --workers N``."""
    folder = _folder()
    return str(folder / name) if folder is not None else None


def counters_path() -> str | None:
    """The limit counters' file of this run; None outside ``serve --workers N``."""
    return run_path(_COUNTERS)


def run_secret() -> bytes | None:
    """The secret every worker of this run shares; None outside ``serve --workers N``."""
    folder = _folder()
    if folder is None:
        return None
    try:
        return (folder / _SECRET).read_bytes()
    except OSError:
        return None
