"""Config validation: one clear error naming the field, the bad value and what is allowed."""
from __future__ import annotations

import numbers
from typing import Any, Iterable

import ml_collections


class ConfigError(ValueError):
  """Raised for invalid config fields, data or API arguments (caught at the boundary)."""


def get_field(config: ml_collections.ConfigDict, field: str) -> Any:
  """Returns config.<field> for a dotted path, with a clear error when it is missing."""
  node = config
  for part in field.split("."):
    try:
      node = node[part]
    except (KeyError, AttributeError, TypeError):
      raise ConfigError(f"config.{field} is missing from the config") from None
  return node


def check(condition: bool, field: str, value: Any, allowed: str) -> None:
  """Raises ConfigError('config.<field>=<value> is invalid: allowed <allowed>') unless condition."""
  if not condition:
    raise ConfigError(f"config.{field}={value!r} is invalid: allowed {allowed}")


def _is_number(v: Any) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_positive(config, *fields: str) -> None:
  for field in fields:
    v = get_field(config, field)
    check(_is_number(v) and v > 0, field, v, "a number > 0")


def check_nonneg(config, *fields: str) -> None:
  for field in fields:
    v = get_field(config, field)
    check(_is_number(v) and v >= 0, field, v, "a number >= 0")


def check_int(config, field: str, min_value: int | None = None, max_value: int | None = None) -> None:
  v = get_field(config, field)
  lo = "-inf" if min_value is None else str(min_value)
  hi = "inf" if max_value is None else str(max_value)
  ok = isinstance(v, numbers.Integral) and not isinstance(v, bool)
  ok = ok and (min_value is None or v >= min_value) and (max_value is None or v <= max_value)
  check(ok, field, v, f"an integer in [{lo}, {hi}]")


def check_in(config, field: str, choices: Iterable[Any]) -> None:
  choices = list(choices)
  v = get_field(config, field)
  check(v in choices, field, v, f"one of {choices}")


def check_range(config, field: str, lo: float, hi: float, *, lo_open: bool = False,
                hi_open: bool = False) -> None:
  v = get_field(config, field)
  ok = _is_number(v)
  if ok:
    ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
  interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
  check(ok, field, v, f"a number in {interval}")
