"""The rules' registry: one function per rule id, registered with a decorator that says when it runs and what
it asks, in English and French.

When a rule runs (`on`):
- `entry`: on a journal entry before it is stored (a journal annotator, checks/advisor.py), for the entries of
  `channel` whose operation is in `operations`: `check(world, tx, entry) -> findings`;
- `run`: over the whole run when the findings are asked for (`GET /_bench/findings`, the report), given the
  journal entries of `channel` whose operation is in `operations`, in journal order:
  `check(world, tx, entries) -> findings with their "entries"`;
- `delivery`: on a mail the world delivers (world/mss.py), `mail`: on a mail the software submits (the SMTP
  door, `POST /_bench/mss/send`), `upload`: on a file the software's user uploads to a control route; their
  arguments are the module's own.

The registry is filled by the decorators when `mockbench.checks` is imported, and never changed afterwards:
a table of code, like a Flask app's routes, not state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

When = Literal["entry", "run", "delivery", "mail", "upload"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Rule:
    id: str                          # the stable machine code findings carry (`EX_3.1-2030`)
    on: When
    text: str                        # what the rule asks, one sentence in English
    fr: str                          # the same in French
    check: Callable[..., Any]
    channel: str | None = None       # `entry` and `run` rules: the journal entries they read
    operations: tuple[str, ...] = ()


class Registry:
    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def rule(self, rule_id: str, on: When, text: str, *, fr: str, channel: str | None = None,
             operations: tuple[str, ...] = ()) -> Callable[[F], F]:
        """Register the decorated function as the check of `rule_id` (one function per rule id)."""
        if on in ("entry", "run") and not (channel and operations):
            raise ValueError(f"{rule_id}: an {on} rule names the channel and operations it reads")

        def register(check: F) -> F:
            if rule_id in self._rules:
                raise ValueError(f"{rule_id} is registered twice ({self._rules[rule_id].check.__qualname__}, "
                                 f"{check.__qualname__})")
            self._rules[rule_id] = Rule(rule_id, on, text, fr, check, channel, tuple(operations))
            return check
        return register

    def __getitem__(self, rule_id: str) -> Rule:
        return self._rules[rule_id]

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())

    def on(self, when: When) -> list[Rule]:
        """The rules that run at `when`, in the order they were registered."""
        return [r for r in self._rules.values() if r.on == when]


RULES = Registry()
rule = RULES.rule
