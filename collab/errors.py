"""Expected errors, and the one way the entry points (experiments/*.py) report them.

An expected error is bad input the user can fix: a config value out of range, a workdir of
another run, a damaged export, a missing checkpoint, malformed data. Its message says what is
wrong and where; a traceback would only bury it. So `run(main)`, the entry points' `app.run`,
prints such an error as one message on stderr and exits with status 2; with `--verbose` it
prints the traceback too. Any other exception is a bug: it keeps its full traceback (status 1).

Expected: `UserError` and its subclasses (ConfigError, DataError, CheckpointError, and the
library's own ExportError, CheckpointRestoreError, TokenizerMismatchError, HFImportError),
bad flags (absl's flag errors, a config file whose get_config raises ValueError or TypeError,
app.UsageError), missing or misplaced files (FileNotFoundError, FileExistsError,
NotADirectoryError, IsADirectoryError, PermissionError), and a training run stopped by a
non-finite loss (FloatingPointError, whose message says what was kept and what to change).
"""
from __future__ import annotations

import re
import sys
import traceback
from typing import Any, Callable

EXIT_EXPECTED = 2

FLAG_HINT = "Pass --helpshort or --helpfull to see help on flags."


class UserError(Exception):
  """An expected error: input the user can fix. Its message names the thing to fix."""


class ConfigError(UserError, ValueError):
  """A config value that is out of range or inconsistent (a ValueError, as config errors
  were before)."""


class DataError(UserError, ValueError):
  """Malformed input data (a ValueError, as data errors were before)."""


class CheckpointError(UserError, ValueError):
  """A model directory or checkpoint this code cannot use as it stands (a ValueError)."""


_EXPECTED_BUILTINS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                      PermissionError, FloatingPointError)


def is_expected(err: BaseException) -> bool:
  """Whether `err` is bad input (reported without a traceback) rather than a bug."""
  from absl import app  # pylint: disable=g-import-not-at-top
  return isinstance(err, (UserError, app.UsageError) + _EXPECTED_BUILTINS)


def _verbose(argv) -> bool:
  """--verbose on the command line (read from argv: flags may not have parsed)."""
  return any(a in ("--verbose", "--verbose=true", "--verbose=1", "--verbose=True")
             for a in argv)


def _report(message: str, argv, *, hint: str = "") -> None:
  if _verbose(argv):
    traceback.print_exc()
  print(f"Error: {message}", file=sys.stderr)
  if hint:
    print(hint, file=sys.stderr)
  elif not _verbose(argv):
    print("(--verbose shows the traceback)", file=sys.stderr)
  sys.stderr.flush()


# config_flags re-raises a get_config error as "Error whilst parsing config file:" followed by
# the formatted traceback; its last unindented "SomeError: message" lines are the message.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


def flag_error_message(message: str) -> str:
  """A flag error without the traceback config_flags puts into it."""
  head, sep, rest = message.partition("Error whilst parsing config file:")
  if not sep:
    return message
  lines = rest.splitlines()
  starts = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
  if not starts:
    return message
  body = "\n".join(lines[starts[-1]:]).strip()
  body = _EXCEPTION_LINE.sub("", body, count=1)
  return f"{head.rstrip()} {body}"


def _parse_flags(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    return flags.FLAGS(argv)
  except flags.Error as err:
    message = str(err) if _verbose(argv) else flag_error_message(str(err))
    print(f"Error: {message}", file=sys.stderr)
    print(FLAG_HINT, file=sys.stderr)
    sys.exit(EXIT_EXPECTED)


def wrap(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
  """`main` with expected errors reported as a message and exit status 2."""

  def wrapped(argv):
    try:
      return main(argv)
    except Exception as err:  # pylint: disable=broad-except
      if not is_expected(err):
        raise  # a bug: the full traceback, exit status 1
      from absl import app  # pylint: disable=g-import-not-at-top
      hint = FLAG_HINT if isinstance(err, app.UsageError) else ""
      _report(str(err) or type(err).__name__, sys.argv, hint=hint)
      sys.exit(EXIT_EXPECTED)

  return wrapped


def run(main: Callable[[list[str]], Any]) -> None:
  """`absl.app.run(main)` with one error path for expected errors (see the module doc) and a
  --verbose flag that adds their traceback."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  if "verbose" not in flags.FLAGS:
    flags.DEFINE_bool("verbose", False,
                      "On an expected error (bad config, export, checkpoint or data), print "
                      "the traceback as well as the message.")
  app.run(wrap(main), flags_parser=_parse_flags)
