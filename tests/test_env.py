"""env.seconds: the one reader of the time limits in the environment."""

import pytest

from distill_jax import env
from distill_jax import locks
from distill_jax import parallel


@pytest.mark.parametrize(
  "text,kwargs,want",
  [
    ("12.5", {"minimum": 0}, 12.5),
    ("0", {"minimum": 0}, 0.0),
    ("3", {"minimum": 1, "whole": True}, 3),
    ("", {"minimum": 0}, 7.0),  # empty: the default
  ],
)
def test_accepted_values(monkeypatch, text, kwargs, want):
  monkeypatch.setenv("DISTILL_TEST_S", text)
  assert env.seconds("DISTILL_TEST_S", 7.0, **kwargs) == want


@pytest.mark.parametrize(
  "text,kwargs,message",
  [
    ("soon", {"minimum": 0}, "give a number of seconds >= 0"),
    ("nan", {"minimum": 0}, "give a number of seconds >= 0"),
    ("inf", {"minimum": 0}, "give a number of seconds >= 0"),
    ("-1", {"minimum": 0}, "give a number of seconds >= 0"),
    ("0", {"minimum": 0, "strict": True}, "give a number of seconds > 0"),
    ("2.5", {"minimum": 1, "whole": True}, "give a whole number of seconds >= 1"),
    ("0", {"minimum": 1, "whole": True}, "give a whole number of seconds >= 1"),
  ],
)
def test_refused_values_name_the_variable_and_the_fix(monkeypatch, text, kwargs, message):
  monkeypatch.setenv("DISTILL_TEST_S", text)
  with pytest.raises(ValueError) as error:
    env.seconds("DISTILL_TEST_S", 7.0, **kwargs)
  assert str(error.value) == f"$DISTILL_TEST_S={text!r}: {message}."


def test_the_three_limits_read_through_it(monkeypatch):
  monkeypatch.delenv(locks.TIMEOUT_ENV, raising=False)
  monkeypatch.delenv(parallel.BARRIER_ENV, raising=False)
  assert locks.default_timeout() == locks.DEFAULT_TIMEOUT_S
  assert parallel.barrier_timeout_s() == parallel.BARRIER_TIMEOUT_S
  monkeypatch.setenv(parallel.BARRIER_ENV, "0")
  with pytest.raises(
    ValueError, match=r"DISTILL_BARRIER_TIMEOUT_S='0': give a number of seconds > 0"
  ):
    parallel.barrier_timeout_s()
