"""Settings read from environment variables, each refused with one line naming the fix.

``seconds(name, default, minimum=..., strict=..., whole=...)`` is the one reader of the
time limits: ``$DISTILL_LOCK_TIMEOUT`` (``locks``), ``$DISTILL_BARRIER_TIMEOUT_S`` and
``$DISTILL_HEARTBEAT_TIMEOUT_S`` (``parallel``).
"""

from __future__ import annotations

import math
import os


def seconds(
  name: str, default: float, *, minimum: float, strict: bool = False, whole: bool = False
) -> float:
  """``$name`` as a number of seconds, ``default`` when unset or empty.

  Raises ValueError (``$NAME='text': give a [whole ]number of seconds >= minimum.``) for text
  that is not a finite number (an integer when ``whole``), or below ``minimum`` (at or below,
  when ``strict``).
  """
  text = os.environ.get(name)
  if not text:
    return default
  try:
    value = int(text) if whole else float(text)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
      raise ValueError
  except ValueError:
    kind = "whole number" if whole else "number"
    relation = ">" if strict else ">="
    raise ValueError(
      f"${name}={text!r}: give a {kind} of seconds {relation} {minimum:g}."
    ) from None
  return value
