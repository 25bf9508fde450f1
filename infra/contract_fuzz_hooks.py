"""Schemathesis hooks of the contract fuzz (infra/contract-fuzz.sh).

Every check runs on every operation. These hooks narrow exactly three cases, each on its one
operation, where a check would fail on something the document does say:

- Two rules of the server are beyond what an OpenAPI document can state; the document states
  them in words (and the second also as `x-max-total-seconds`). Without the hooks the fuzzer
  would generate schema-valid requests that break them and take the server's 400 for "a
  schema-valid request rejected". `filter_case` (the hook every phase applies: coverage,
  fuzzing, stateful) drops the positive cases that break them.
- A project's snapshot before its first event: see `snapshot_before_the_first_event`.
"""

import json
import re

import schemathesis


def _positive(case):
    meta = case.meta
    return meta is None or not meta.generation.mode.is_negative


@schemathesis.hook("filter_case").apply_to(method="GET", path="/v1/projects/{id}/conflicts")
def conflicts_entity_filter_is_a_pair(ctx, case):
    """`entity_type` and `entity_id` filter together; one without the other is refused (400):
    a rule between two parameters, which OpenAPI cannot express."""
    query = case.query if isinstance(case.query, dict) else {}
    return not _positive(case) or ("entity_type" in query) == ("entity_id" in query)


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


@schemathesis.hook("filter_case").apply_to(method="POST", path="/v1/tokens")
def mint_ttl_within_its_total(ctx, case):
    """A `ttl` that matches the `Duration` pattern is refused (400) when its parts sum to more
    than `x-max-total-seconds` (ten years): a bound on a sum, which no pattern states."""
    ttl = case.body.get("ttl") if isinstance(case.body, dict) else None
    if not _positive(case) or not isinstance(ttl, str):
        return True
    duration = ctx.operation.schema.raw_schema["components"]["schemas"]["Duration"]
    if not re.search(duration["pattern"], ttl):
        return True
    total = sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"([0-9]+)([smhdw])", ttl))
    return total <= duration["x-max-total-seconds"]


@schemathesis.hook("filter_failure").apply_to(method="GET", path="/v1/projects/{id}/sync/snapshot")
def snapshot_before_the_first_event(ctx, failure, case, response):
    """ensure_resource_availability (ST302) takes a 404 right after `POST /v1/projects` for a
    project that went missing. A new project has no snapshot until its first event, and td's
    protocol answers that with 404 `no_events` (td then falls back to a normal pull), as the
    document says. Only that answer is dropped: any other 404 there still fails."""
    if failure.code != "ST302" or response.status_code != 404:
        return True
    try:
        code = json.loads(response.content).get("code")
    except (ValueError, AttributeError):
        return True
    return code != "no_events"
