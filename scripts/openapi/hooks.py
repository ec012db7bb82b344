"""Schemathesis hooks for scripts/check-openapi.py: the values /openapi.json marks as ones
a client cannot make up, made real, so that generated requests the document calls valid are
valid.

- Session tokens, resume tokens and cursors are issued by the server (the document's
  x-aerolith-issued-by says which answer carries each); any other value is
  invalid_argument even when it fits the stated syntax. check-openapi.py collects real ones
  before the run (AEROLITH_OPENAPI_ISSUED, JSON: format name -> values).
- An idempotency key is the client's own, but fresh for each distinct request (a reused one
  with another request is invalid_argument).
- A query's cursor belongs to a query with the same sort.

Every phase generates from the schema (the coverage phase ignores custom formats), so before
each call a value that fits the stated syntax is swapped for a real one; a value outside the
syntax is a deliberately invalid one and is sent as it is.
- $regex patterns are in the Rust regex crate's syntax, not Python's: drawn from patterns
  both read alike (format aerolith-regex).
"""
import itertools
from collections.abc import MutableMapping
import json
import os
import re
import string
import urllib.error
import urllib.request

import schemathesis
from hypothesis import strategies as st

BASE = os.environ.get("AEROLITH_OPENAPI_BASE", "")
TOKEN = os.environ.get("AEROLITH_OPENAPI_TOKEN", "")
# Where check-openapi.py put documents, so that a query there has a second page.
SEEDED = "/v1/collections/seeded/query"

ISSUED = json.loads(os.environ.get("AEROLITH_OPENAPI_ISSUED", "{}"))
for _name, _values in ISSUED.items():
    schemathesis.openapi.format(_name, st.sampled_from(_values))
_PICKS = {name: itertools.cycle(values) for name, values in ISSUED.items()}

# Unique across the run: a counter, not random draws (Hypothesis repeats its simplest
# examples, which would reuse a key with another request).
_KEYS = itertools.count()
_RUN = os.urandom(6).hex()
schemathesis.openapi.format(
    "aerolith-idempotency-key",
    st.builds(lambda: f"key-{_RUN}-{next(_KEYS)}"),
)

schemathesis.openapi.format(
    "aerolith-regex",
    st.one_of(
        st.sampled_from(["", "^a", "b$", "a.*b", "^[0-9]+$", "(?i)abc", "x|y", "\\d{2,4}"]),
        st.text(alphabet=string.ascii_letters + string.digits + " _-", max_size=12),
    ),
)


def _issued_query_cursor(sort):
    """The next_cursor of a one-document page of a query sorted by `sort`, or None."""
    body = json.dumps({"sort": sort, "limit": 1}).encode()
    req = urllib.request.Request(BASE + SEEDED, data=body, method="POST")
    req.add_header("Authorization", "Bearer " + TOKEN)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read()).get("next_cursor")
    except (urllib.error.URLError, ValueError):
        return None


def _swap(container, name, syntax, value):
    """Replaces `container[name]` (any case) by `value()` when it fits `syntax`."""
    if not isinstance(container, MutableMapping):
        return
    for key in list(container):
        if key.lower() == name.lower():
            current = container[key]
            if isinstance(current, str) and re.fullmatch(syntax, current):
                container[key] = value()
            return


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Swaps well-formed made-up tokens, cursors and keys for real ones."""
    pick = lambda name: lambda: next(_PICKS[name])  # noqa: E731
    _swap(case.headers, "X-Aerolith-Session", r"s1\.[A-Za-z0-9_-]+", pick("aerolith-session"))
    _swap(case.headers, "Idempotency-Key", r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?",
          lambda: f"key-{_RUN}-{next(_KEYS)}")
    _swap(case.query, "cursor", r"[A-Za-z0-9_-]+", pick("aerolith-cursor"))
    _swap(case.query, "since", r"t1\.[A-Za-z0-9_-]+", pick("aerolith-resume-token"))
    if case.operation.label == "POST /v1/collections/{c}/query":
        body = case.body
        sort = body.get("sort") if isinstance(body, dict) else None
        _swap(body, "cursor", r"[A-Za-z0-9_-]+",
              lambda: _issued_query_cursor(sort if isinstance(sort, list) else None))
