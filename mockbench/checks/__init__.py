"""The conformance rules across exchanges: one module, one registered function per rule id
(checks/registry.py), run by the world where the exchanges happen.

| rule | module | runs |
|---|---|---|
| `EX_3.1-2030` | auto_search.py | on a TD3.1's journal entry |
| `DMP/TD3.3c` | read_gone.py | on a TD3.2's journal entry |
| `MSS/UX.12` | error_copy.py | over the run (`GET /_bench/findings`, the report) |
| `DMP/CONF.14` | access_traces.py | over the run |
| `SSI/IE.31` | verification.py | on a mail the world delivers outside MSSanté (world/mss.py) |
| `MSS/XDM` | xdm.py | on a mail submitted (the SMTP door) or injected (`POST /_bench/mss/send`) |
| `STAT/ES.01` | stats.py | on the software's statistics of sends (`POST /_bench/stat/check`) |

The advisor (advisor.py) runs the entry rules as a journal annotator and the run rules when findings are
asked for, with the doors' own findings grouped. A check reads the world (its store, journal and services)
and writes nothing but findings (SSI/IE.31 also remembers the secrets it saw, for its reuse check).

Importing this package registers every rule, in the order above (the run rules' findings come in it).
"""

from __future__ import annotations

from .registry import RULES, Rule, rule

# The order registers the rules: the run rules' findings come in it.
# isort: off
from . import auto_search, read_gone, error_copy, access_traces, verification, xdm, stats  # noqa: E402, F401
# isort: on

__all__ = ["RULES", "Rule", "rule"]
