r"""Serves a finished run's TensorBoard, checks it shows every run, and screenshots it headless.

  python -m experiments.tensorboard_screenshot --logdir=runs/conv/tensorboard \
      --out_dir=docs/figures

starts ``tensorboard --logdir`` on a free local port (it answers once it has read every event
file), fails unless its HTTP API lists every run folder under ``--logdir`` (naming the ones
missing), reads the HParams sessions (one per student run, with its hyper-parameters and last
metrics), and saves one PNG per ``--views`` entry (``tensorboard_<view>.png``) drawn by a
headless Chromium (Qt WebEngine, the ``screenshot`` extra: ``pip install -e '.[screenshot]'``;
the ``test`` extra has it too) once the page shows every arm, else fails. ``--views=`` (empty)
only checks. ``docs/figures/tensorboard_*.png`` were made by this command on the main command's
workdir (docs/running.md, "TensorBoard").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from absl import app, flags

from distill_jax import parallel

# What each view shows: TensorBoard's URL fragment and query (the time series' run and tag
# filters are regular expressions; smoothing 0 draws the values as they are), and a script run
# once the page has loaded (the time series: close the settings pane, which is open by default).
VIEWS = {
  "time_series": (
    "timeseries",
    {"smoothing": "0", "tagFilter": "^test/"},
    "document.querySelector('[aria-label=\"Close side pane\"]')?.click();",
  ),
  "hparams": ("hparams", {}, "clickTab('PARALLEL COORDINATES VIEW');"),
}
# Clicks the first tab (in any shadow DOM) whose text is ``label``, upper case.
CLICK_TAB = """function clickTab(label) {
  const find = (node) => {
    if (node.tagName === "PAPER-TAB" && node.textContent.trim().toUpperCase() === label) return node;
    for (const child of [...(node.shadowRoot ? [node.shadowRoot] : []), ...node.childNodes]) {
      const found = find(child);
      if (found) return found;
    }
    return null;
  };
  find(document.body)?.click();
}
"""
DEFAULT_RUN_FILTER = r"/mean$"  # each arm's mean over its runs: one readable curve per arm


def run_folders(logdir: str) -> list[str]:
  """The TensorBoard runs under ``logdir``: folders holding event files, relative, ``/``-joined
  (``.`` for ``logdir`` itself), sorted."""
  runs = []
  for folder, _, files in os.walk(logdir):
    if any(name.startswith("events.") for name in files):
      relative = os.path.relpath(folder, logdir)
      runs.append("." if relative == "." else relative.replace(os.sep, "/"))
  return sorted(runs)


def _get(url: str, body: dict | None = None, timeout_s: float = 10.0):
  data = None if body is None else json.dumps(body).encode()
  headers = {"Content-Type": "application/json", "X-XSRF-Protected": "1"}
  request = urllib.request.Request(url, data=data, headers=headers)
  with urllib.request.urlopen(request, timeout=timeout_s) as response:
    return json.loads(response.read())


@contextlib.contextmanager
def serve(logdir: str, timeout_s: float = 120.0):
  """``tensorboard --logdir`` on a free local port until the block ends; yields its URL. The
  server reads every event file before it answers (a finished run: one load, no reloads), and
  must then list every run folder of ``logdir``. Raises ``FileNotFoundError`` for a logdir
  without event files, ``RuntimeError`` (naming the runs missing, or the server's output when it
  stopped or did not answer within ``timeout_s``) otherwise."""
  expected = run_folders(logdir)
  if not expected:
    raise FileNotFoundError(
      f"no TensorBoard event files under {logdir!r}: give a workdir's tensorboard/ folder (or a "
      "folder of workdirs), written by python -m experiments.distill."
    )
  port = parallel.free_port()
  command = [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}", "--host=127.0.0.1"]
  command += [f"--port={port}", "--load_fast=false", "--reload_task=blocking"]
  command += ["--reload_interval=0"]
  log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the server
  server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
  url, served, deadline = f"http://127.0.0.1:{port}", None, time.monotonic() + timeout_s
  try:
    while served is None and time.monotonic() < deadline and server.poll() is None:
      try:
        served = _get(f"{url}/data/runs")
      except (urllib.error.URLError, ConnectionError, TimeoutError):
        time.sleep(0.25)
    if served is None:
      server.kill()
      server.wait()
      log.seek(0)
      output = log.read()
      raise RuntimeError(
        f"TensorBoard on {logdir!r} did not answer within {timeout_s:.0f} s (or stopped); its "
        f"output:\n{output[-2000:]}"
      )
    missing = sorted(set(expected) - set(served))
    if missing:
      raise RuntimeError(
        f"TensorBoard lists {len(served)} runs under {logdir!r} but not {len(missing)} folders "
        f"holding event files: {missing[:5]}"
      )
    yield url
  finally:
    if server.poll() is None:
      server.terminate()
      try:
        server.wait(timeout=10)
      except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def hparams_sessions(url: str) -> dict[str, dict]:
  """The HParams dashboard's sessions: ``{run: {"hparams": {...}, "metrics": {tag: value}}}``,
  read through TensorBoard's hparams API (what its table shows)."""
  statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
  request = {"experimentName": "", "allowedStatuses": statuses, "startIndex": 0, "sliceSize": 10**6}
  groups = _get(f"{url}/data/plugin/hparams/session_groups", {**request, "colParams": []})
  return {
    group["name"]: {
      "hparams": group["hparams"],
      "metrics": {m["name"]["tag"]: m["value"] for m in group.get("metricValues", [])},
    }
    for group in groups.get("sessionGroups", [])
  }


@dataclasses.dataclass(frozen=True)
class Page:
  """A TensorBoard page to screenshot: its address, a script run once it has loaded, and the
  words it must show (whitespace ignored) before its picture is taken."""

  address: str
  script: str = ""
  must_show: tuple[str, ...] = ()


def view_page(url: str, view: str, must_show=(), run_filter: str = DEFAULT_RUN_FILTER) -> Page:
  """The ``Page`` of a view (``VIEWS``) of the TensorBoard at ``url``."""
  if view not in VIEWS:
    raise ValueError(f"unknown view {view!r}: choose from {sorted(VIEWS)}.")
  fragment, query, script = VIEWS[view]
  query = {**query, "runFilter": run_filter} if fragment == "timeseries" and run_filter else query
  return Page(f"{url}/?{urllib.parse.urlencode(query)}#{fragment}", script, tuple(must_show))


# The text a page shows, shadow DOM (TensorBoard's Polymer dashboards) included.
PAGE_TEXT = """(function text(node) {
  let all = node.shadowRoot ? text(node.shadowRoot) : "";
  for (const child of node.childNodes) {
    if (["STYLE", "SCRIPT", "NOSCRIPT", "TEMPLATE"].includes(child.nodeName)) continue;
    all += child.nodeType === Node.TEXT_NODE ? child.textContent + " " : text(child);
  }
  return all;
})(document.body)"""


def screenshot(
  pages: dict[str, Page], size=(1400, 720), timeout_s: float = 60.0, settle_s: float = 1.0
) -> dict[str, bytes]:
  """``{name: Page}`` → ``{name: PNG bytes}``, each page drawn by a headless Chromium (Qt
  WebEngine, software rendering): loaded, its script run, and grabbed ``settle_s`` after it
  shows every word of ``must_show`` (TensorBoard fetches its data after the page loads).
  Raises ``RuntimeError`` naming the words still missing after ``timeout_s``."""
  os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
  os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--disable-gpu --no-sandbox")
  os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")  # Chromium's sandbox refuses root
  try:
    from PySide6.QtCore import QBuffer, QByteArray, QEventLoop, QIODevice, QSize, QTimer, QUrl
    from PySide6.QtWebEngineWidgets import QWebEngineView
    from PySide6.QtWidgets import QApplication
  except ImportError as error:
    raise ImportError(
      f"screenshots need Qt WebEngine ({error}): pip install -e '.[screenshot]', or pass "
      "--views= to only check the runs."
    ) from error
  application = QApplication.instance() or QApplication([sys.argv[0]])
  view, loop = QWebEngineView(), QEventLoop()
  view.resize(QSize(*size))
  view.show()

  def wait(seconds):  # runs Qt's events meanwhile
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()

  def page_text() -> str:
    text = []
    view.page().runJavaScript(PAGE_TEXT, 0, text.append)
    while not text:
      wait(0.05)
    return "".join((text[0] or "").split())

  pictures = {}
  for name, page in pages.items():
    loaded, deadline = [], time.monotonic() + timeout_s
    view.loadFinished.connect(loaded.append)
    view.load(QUrl(page.address))
    while not loaded and time.monotonic() < deadline:
      wait(0.1)
    view.loadFinished.disconnect()
    if not loaded or not loaded[0]:
      raise RuntimeError(f"the headless browser could not load {page.address} in {timeout_s} s.")
    while True:
      wait(0.5)
      if page.script:
        view.page().runJavaScript(CLICK_TAB + page.script)
      text = page_text()
      missing = [word for word in page.must_show if "".join(word.split()) not in text]
      if not missing or time.monotonic() > deadline:
        break
    if missing:
      raise RuntimeError(
        f"TensorBoard's page {page.address} does not show {missing[:5]} after {timeout_s} s."
      )
    wait(settle_s)
    png = QByteArray()  # kept referenced: the buffer writes into it
    buffer = QBuffer(png)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not view.grab().save(buffer, "PNG"):
      raise RuntimeError(f"could not grab the headless browser's picture of {page.address}.")
    buffer.close()
    pictures[name] = bytes(png.data())
  view.close()
  view.deleteLater()
  application.processEvents()
  return pictures


FLAGS = flags.FLAGS
flags.DEFINE_string("logdir", None, "A workdir's tensorboard/ folder, or a folder of them.")
flags.DEFINE_string("out_dir", "docs/figures", "Where tensorboard_<view>.png go.")
flags.DEFINE_list("views", list(VIEWS), f"Views to screenshot, from {sorted(VIEWS)}; empty: none.")
flags.DEFINE_string("run_filter", DEFAULT_RUN_FILTER, "Time series: runs shown (a regex).")
flags.DEFINE_integer("width", 1400, "Screenshot width in pixels.")
flags.DEFINE_integer("height", 720, "Screenshot height in pixels.")
flags.DEFINE_float("timeout_seconds", 60.0, "Longest wait for a page to show its runs.")


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.views) - set(VIEWS))
  if unknown:
    raise app.UsageError(f"--views: unknown {unknown}; choose from {sorted(VIEWS)}.")
  if FLAGS.logdir is None:
    raise app.UsageError("--logdir is required: a workdir's tensorboard/ folder.")
  runs = run_folders(FLAGS.logdir)
  shown = [run for run in runs if re.search(FLAGS.run_filter, run)]
  if runs and "time_series" in FLAGS.views and not shown:
    raise app.UsageError(
      f"--run_filter={FLAGS.run_filter!r} matches none of the {len(runs)} runs under "
      f"{FLAGS.logdir!r} (e.g. {runs[:3]}): give a regular expression that matches some."
    )
  with serve(FLAGS.logdir) as url:
    sessions = hparams_sessions(url)
    print(f"TensorBoard lists all {len(runs)} runs; HParams has {len(sessions)} sessions")
    # What each page must show before its picture: the time series its runs' names and the
    # accuracy chart, HParams every arm and the accuracy column.
    arms = sorted({str(session["hparams"].get("arm")) for session in sessions.values()})
    must_show = {"time_series": shown + ["test/accuracy"], "hparams": arms + ["test/accuracy"]}
    pages = {v: view_page(url, v, must_show[v], FLAGS.run_filter) for v in FLAGS.views}
    pictures = screenshot(pages, (FLAGS.width, FLAGS.height), FLAGS.timeout_seconds)
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  for view, png in pictures.items():
    path = os.path.join(FLAGS.out_dir, f"tensorboard_{view}.png")
    with open(path, "wb") as file:
      file.write(png)
    print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
