"""A pytest plugin that writes what a test run did to a JSON file, for docs/testing.md to quote.

With ``DISTILL_JAX_SUITE_JSON=<path>`` in the environment, the run (the controller, under
pytest-xdist) writes ``{"passed", "failed", "skipped", "seconds", "slowest", "provenance"}``
there when it ends: the counts of tests, the session's wall time, its slowest tests and the
command, commit and machine. Without the variable it does nothing. ``tests/conftest.py`` loads
it, so ``DISTILL_JAX_SUITE_JSON=docs/results/test_suite.json CI=true bash .ci/run`` records the
CI command's own run.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

ENVIRONMENT_VARIABLE = "DISTILL_JAX_SUITE_JSON"
SLOWEST = 15  # as many as the suite's --durations


class SuiteRecord:
  """Counts the reports (the workers' arrive at the controller) and times the session."""

  def __init__(self, path: str):
    self.path = path
    self.started = time.perf_counter()
    self.counts = {"passed": 0, "failed": 0, "skipped": 0}
    self.durations: dict[str, float] = {}

  @pytest.hookimpl
  def pytest_runtest_logreport(self, report):
    self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
    if report.when == "call" and report.passed:
      self.counts["passed"] += 1
    elif report.failed:
      self.counts["failed"] += 1
    elif report.skipped:
      self.counts["skipped"] += 1

  @pytest.hookimpl(trylast=True)
  def pytest_sessionfinish(self, session, exitstatus):
    from distill_jax import files
    from distill_jax import provenance

    slowest = sorted(self.durations.items(), key=lambda item: -item[1])[:SLOWEST]
    record = {
      "provenance": provenance.record(["-m", "pytest", *sys.argv[1:]]),
      **self.counts,
      "exit_status": int(exitstatus),
      "seconds": time.perf_counter() - self.started,
      "slowest": [{"test": test, "seconds": seconds} for test, seconds in slowest],
    }
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    files.write_json(self.path, record, indent=1)


def pytest_configure(config):
  path = os.environ.get(ENVIRONMENT_VARIABLE)
  if path and not hasattr(config, "workerinput"):  # the xdist controller, or a plain run
    config.pluginmanager.register(SuiteRecord(path), "distill_jax_suite_record")
