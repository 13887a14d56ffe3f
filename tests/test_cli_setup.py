"""Tests for experiments/cli_setup.py: how the command lines end a run (one line each)."""

import errno
import io
import logging
import types

import pytest

from experiments import cli_setup


def _interrupted(kind):
  interrupt = kind()
  interrupt.add_note("students[no_teacher] epoch 71/150 (epoch 70 saved)")
  raise interrupt


@pytest.mark.parametrize(
  "kind, status, name",
  [(KeyboardInterrupt, 130, "Ctrl-C (SIGINT)"), (cli_setup.Terminated, 143, "SIGTERM")],
)
def test_an_interruption_is_one_line_with_its_exit_status(tmp_path, capsys, kind, status, name):
  (tmp_path / "students" / "key" / "manifests").mkdir(parents=True)
  (tmp_path / "students" / "key" / "manifests" / "70.json").write_text("{}")
  with pytest.raises(SystemExit) as ended:
    cli_setup.run_reported(lambda: _interrupted(kind), folders=(str(tmp_path), None))
  assert ended.value.code == status
  assert capsys.readouterr().err == (
    f"interrupted by {name} during students[no_teacher] epoch 71/150 (epoch 70 saved); "
    "finished work is kept (checkpoints): run the same command again to resume.\n"
  )


def test_an_interruption_before_any_save_says_nothing_is_kept(tmp_path, capsys):
  with pytest.raises(SystemExit):
    cli_setup.run_reported(lambda: _interrupted(KeyboardInterrupt), folders=(str(tmp_path),))
  assert "nothing was saved yet: the same command starts again." in capsys.readouterr().err


def test_user_errors_are_one_error_line():
  def nan_loss():
    raise FloatingPointError("students: train_loss became NaN/inf at epoch 3")

  with pytest.raises(SystemExit, match="^error: students: train_loss became NaN/inf at epoch 3$"):
    cli_setup.run_reported(nan_loss, folders=())


@pytest.mark.parametrize("saved", [False, True])
def test_a_full_disk_says_work_is_kept_only_when_some_was_saved(tmp_path, saved):
  if saved:
    (tmp_path / "teacher" / "key" / "manifests").mkdir(parents=True)
    (tmp_path / "teacher" / "key" / "manifests" / "1.json").write_text("{}")

  def full():
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "students"))

  with pytest.raises(SystemExit) as ended:
    cli_setup.run_reported(full, folders=(str(tmp_path),))
  assert str(ended.value.code).startswith("error: no space left on the device")
  assert ("Finished work is kept" in str(ended.value.code)) == saved


def test_asyncio_errors_lose_their_tracebacks():
  stream = io.StringIO()
  handler = logging.StreamHandler(stream)
  logger = logging.getLogger("asyncio")
  logger.addHandler(handler)
  logger.addFilter(cli_setup._without_traceback)
  try:
    try:
      raise RuntimeError("Event loop is closed")
    except RuntimeError:
      logger.error("Task exception was never retrieved", exc_info=True)
  finally:
    logger.removeHandler(handler)
    logger.removeFilter(cli_setup._without_traceback)
  assert stream.getvalue() == (
    "Task exception was never retrieved: RuntimeError: Event loop is closed\n"
  )


def test_usage_errors_point_to_the_help():
  assert cli_setup.usage_error("unexpected arguments: x.") == (
    "error: unexpected arguments: x. Run with --helpshort for the flags."
  )


def test_closed_loop_callbacks_are_one_warning_and_other_errors_pass_through(caplog):
  passed = []
  hook = cli_setup._one_line_closed_loop_error(passed.append)
  closed = types.SimpleNamespace(exc_value=RuntimeError("Event loop is closed"))
  with caplog.at_level(logging.WARNING):
    hook(closed)
    hook(closed)
  assert [r.getMessage() for r in caplog.records if "event loop closed" in r.getMessage()] == [
    "background save callbacks ended after their event loop closed: Event loop is closed"
  ]
  other = types.SimpleNamespace(exc_value=ValueError("something else"))
  hook(other)
  assert passed == [other]
