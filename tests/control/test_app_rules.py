"""The HTTP app's rules make their URL builders when a URL is first built (control/app.py `_Rule`, issue 21
point 5): every rule of a bench builds what werkzeug's own Rule builds."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter, Map, Rule

from mockbench.bench import Bench
from mockbench.config import Config


def test_every_rule_builds_what_werkzeug_builds(tmp_path) -> None:
    bench = Bench(Config(state=tmp_path / "s", http_port=0, mllp_port=0, smtp_port=0, imap_port=0))
    try:
        lazy = bench.app.url_map
        rules = list(lazy.iter_rules())
        assert len(rules) > 50 and any(r.arguments for r in rules)
        plain = Map([Rule(r.rule, endpoint=r.endpoint, methods=r.methods, defaults=r.defaults) for r in rules],
                    converters=lazy.converters, strict_slashes=lazy.strict_slashes)
        ours, theirs = lazy.bind("bench.test"), plain.bind("bench.test")
        for rule in rules:
            values = {name: 7 if isinstance(rule._converters.get(name), IntegerConverter) else "a b/é"
                      for name in rule.arguments}
            for extra in ({}, {"q": "x y"}):   # the two builders: without and with unknown arguments
                method = sorted(rule.methods or {"GET"})[0]
                built = ours.build(rule.endpoint, {**values, **extra}, method=method)
                assert built == theirs.build(rule.endpoint, {**values, **extra}, method=method), rule.rule
                assert "x+y" in built or not extra
    finally:
        bench.close()
