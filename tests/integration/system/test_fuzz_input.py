"""Hostile input against every operation of the OpenAPI document (issue 12): never a 5xx.

Schemathesis (``test_fuzz.py``) generates mostly well-typed values; the classic breakers it
rarely tries are sent here on purpose, into every string field of every JSON or form body,
every query parameter and every path parameter of every operation that
``/schema/openapi.json`` lists, so a new endpoint is covered the day it is added:

- NUL and other C0/C1 control characters, a value with a trailing ``\\n`` (``$`` in a Python
  pattern matches before it), lone UTF-16 surrogates as JSON ``\\ud800`` escapes (and as
  invalid UTF-8 in URLs);
- huge numbers (``1e400``, ``2**70``) in every numeric field and parameter;
- extreme dates (year 1, 9999-12-31T23:59:59Z, year 10000) in every string field;
- and, per operation with a JSON body, 3,000 nested brackets.

Each request starts from a valid-looking baseline (examples, enums and values generated from
the field's pattern), so the hostile value meets the code behind the schema. It runs against
the same served app, with the same identities (citizen, partner, staff), as ``test_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import find
from hypothesis import strategies as st

from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyManager, KeyStore
from identity.staff.admin import StaffAdmin
from identity.tokens import API_AUDIENCE, AccessTokens
from services.departments.sms import SmsGateway
from tests.integration.system import test_fuzz
from tests.support.processes import ServerProcess

server = test_fuzz.server  # the same served app (fixture)

CONCURRENCY = 8
_MARK = "__fuzz_slot__"

#: Raw JSON tokens put where a string goes (already JSON-encoded: surrogates cannot be
#: encoded from a Python ``str``).
HOSTILE_STRINGS: tuple[str, ...] = (
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\u0007\\u001b[31m"',
    '"\\u007f"',
    '"\\u0085"',
    '"line\\r\\nX-Injected: 1"',
    '"\\ud800"',
    '"a\\udfffb"',
    '"0001-01-01T00:00:00Z"',
    '"9999-12-31T23:59:59Z"',
    '"10000-01-01T00:00:00Z"',
    '"0001-01-01"',
    '"' + "9" * 400 + '"',
)
HOSTILE_NUMBERS: tuple[str, ...] = ("1e400", "-1e400", str(2**70), str(-(2**70)), "1.5")
#: Into a string field, one number is enough to prove the type check.
NUMBER_FOR_STRING = "1e400"
#: The same, for URLs and forms (percent-encoded bytes; ``%ED%A0%80`` is a UTF-8 surrogate).
HOSTILE_URL_VALUES: tuple[str, ...] = (
    "%00",
    "a%00b",
    "%07",
    "%7F",
    "%C2%85",
    "%ED%A0%80",
    "%FF",
    "0001-01-01T00%3A00%3A00Z",
    "9999-12-31T23%3A59%3A59Z",
    "10000-01-01T00%3A00%3A00Z",
    "1e400",
    str(2**70),
    "x" * 3000,
)
DEEP_JSON = b"[" * 3000 + b"]" * 3000


@dataclass
class Probe:
    """One request to send."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    content: bytes | None
    label: str


@dataclass
class Outcome:
    """What came back, for the report."""

    probe: Probe
    status: int
    body: str


@dataclass
class Document:
    """The OpenAPI document with ``$ref`` resolution."""

    raw: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            schema = self.raw["components"]["schemas"][name]
        return schema

    def options(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """The alternatives of a ``oneOf``/``anyOf`` (``null`` last), or the schema itself."""
        schema = self.resolve(schema)
        alternatives = schema.get("oneOf") or schema.get("anyOf")
        if not alternatives:
            return [schema]
        resolved = [self.resolve(a) for a in alternatives]
        return sorted(resolved, key=lambda s: s.get("type") == "null")


_PATTERN_VALUES: dict[str, str] = {}


def _from_pattern(pattern: str, min_length: int, max_length: int) -> str:
    """A short ASCII value matching ``pattern``: simple candidates first (Hypothesis is slow)."""
    key = f"{pattern}|{min_length}|{max_length}"
    if key not in _PATTERN_VALUES:
        lengths = sorted({min_length, 1, 6, 8, 11, 12, 16, 18, 43} & set(range(min_length, max_length + 1)))
        candidates = ["13800000001", "110101", *(char * n for n in lengths for char in "x0a")]
        found = next((c for c in candidates if re.search(pattern, c)), None)
        if found is None:
            strategy = st.from_regex(pattern).filter(lambda s: min_length <= len(s) <= max_length)
            found = find(strategy, lambda s: s.isascii() and s.isprintable())
        _PATTERN_VALUES[key] = found
    return _PATTERN_VALUES[key]


def baseline(doc: Document, schema: dict[str, Any], name: str, known: dict[str, Any], depth: int = 0) -> Any:
    """A valid-looking value for ``schema`` (examples, enums, patterns, known ids)."""
    schema = doc.options(schema)[0]
    if name in known:
        return known[name]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("examples"):
        return schema["examples"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        if depth > 6:
            return {}
        return {
            prop: baseline(doc, sub, prop, known, depth + 1) for prop, sub in (schema.get("properties") or {}).items()
        }
    if kind == "array":
        items = schema.get("items") or {"type": "string"}
        count = max(1, schema.get("minItems", 1))
        return [baseline(doc, items, name, known, depth + 1) for _ in range(min(count, 2))]
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return int(low) + (1 if "exclusiveMinimum" in schema else 0)
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    fmt = schema.get("format")
    if fmt == "uuid":
        return str(uuid.uuid4())
    if fmt == "date-time":
        return (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "date":
        return dt.date.today().isoformat()
    min_length = schema.get("minLength", 1)
    max_length = schema.get("maxLength", 64)
    if "pattern" in schema:
        return _from_pattern(schema["pattern"], min_length, max_length)
    return "x" * max(min_length, min(8, max_length))


def slots(doc: Document, schema: dict[str, Any], value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every (path, kind) inside ``value`` where a string or a number goes."""
    options = doc.options(schema)
    chosen = options[0]
    # OpenAPI 3.1 allows a list of types (``["string", "null"]``).
    kinds = {k for o in options for k in (o.get("type") if isinstance(o.get("type"), list) else [o.get("type")])}
    if isinstance(value, dict):
        props = chosen.get("properties") or {}
        for key, sub in value.items():
            yield from slots(doc, props.get(key, {}), sub, (*path, key))
    elif isinstance(value, list):
        if value:
            yield from slots(doc, chosen.get("items") or {}, value[0], (*path, 0))
    elif isinstance(value, str) or "string" in kinds:
        yield (*path, "string")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield (*path, "number")


def _with_mark(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return _MARK
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _with_mark(value[head], rest)}
    copy = list(value)
    copy[head] = _with_mark(copy[head], rest)
    return copy


def _form(body: dict[str, Any], slot: str | None = None, raw: str | None = None) -> bytes:
    parts = []
    for key, value in body.items():
        if key == slot:
            parts.append(f"{quote(key)}={raw}")
        elif value is not None and not isinstance(value, (dict, list)):
            parts.append(f"{quote(key)}={quote(str(value).lower() if isinstance(value, bool) else str(value))}")
    return "&".join(parts).encode()


def probes(doc: Document, identities: dict[str, dict[str, str]], known: dict[str, Any]) -> Iterator[Probe]:
    """Every hostile request for every operation of the document."""
    for template, item in doc.raw["paths"].items():
        if template in ("/v1/auth/logout",) or template.startswith("/schema"):
            continue
        for method, operation in item.items():
            if method in ("get", "post", "put", "delete", "patch"):
                params = [*item.get("parameters", []), *operation.get("parameters", [])]
                yield from _operation_probes(doc, template, method, operation, params, identities, known)


def _operation_probes(
    doc: Document,
    template: str,
    method: str,
    operation: dict[str, Any],
    params: list[dict[str, Any]],
    identities: dict[str, dict[str, str]],
    known: dict[str, Any],
) -> Iterator[Probe]:
    headers = dict(_identity(template, identities))
    params = [p for p in params if p.get("in") in ("path", "query")]
    values = {p["name"]: baseline(doc, p.get("schema", {}), p["name"], known) for p in params}
    body_type, body_schema = _body(operation)
    body = baseline(doc, body_schema, "", known) if body_schema is not None else None

    def url(override: tuple[str, str] | None = None) -> tuple[str, str]:
        path = template
        query = []
        for p in params:
            name = p["name"]
            text = override[1] if override and override[0] == name else quote(str(values[name]), safe="")
            if p["in"] == "path":
                path = path.replace("{" + name + "}", text)
            else:
                query.append(f"{quote(name)}={text}")
        return path, "&".join(query)

    def send(path: str, query: str, content: bytes | None, label: str) -> Probe:
        extra = {"Content-Type": body_type} if content is not None and body_type else {}
        return Probe(method.upper(), path, query, {**headers, **extra}, content, label)

    plain = json.dumps(body).encode() if body_type == "application/json" else None
    if body_type and body_type != "application/json" and isinstance(body, dict):
        plain = _form(body)
    for p in params:
        for raw in (*HOSTILE_URL_VALUES, quote(str(values[p["name"]]), safe="") + "%0A"):
            path, query = url((p["name"], raw))
            yield send(path, query, plain, f"{p['in']} {p['name']}={raw[:40]}")
    if body is None:
        return
    path, query = url()
    if body_type == "application/json":
        yield send(path, query, DEEP_JSON, "body: 3000-deep JSON")
        for slot in slots(doc, body_schema or {}, body):
            *where, kind = slot
            marked = json.dumps(_with_mark(body, tuple(where)))
            current = _at(body, where)
            tokens = [*HOSTILE_STRINGS, NUMBER_FOR_STRING] if kind == "string" else list(HOSTILE_NUMBERS)
            if isinstance(current, str):
                tokens.append(json.dumps(current + "\n"))
            for token in tokens:
                content = marked.replace(json.dumps(_MARK), token).encode()
                yield send(path, query, content, f"body {'.'.join(map(str, where))}={token[:40]}")
    elif isinstance(body, dict):
        for key, current in body.items():
            for raw in (*HOSTILE_URL_VALUES, quote(str(current), safe="") + "%0A"):
                yield send(path, query, _form(body, key, raw), f"form {key}={raw[:40]}")


def _at(value: Any, where: list[Any]) -> Any:
    for key in where:
        value = value[key]
    return value


def _body(operation: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    content = (operation.get("requestBody") or {}).get("content") or {}
    for media_type in ("application/json", "application/x-www-form-urlencoded", "multipart/form-data"):
        if media_type in content:
            return media_type, content[media_type].get("schema", {})
    return None, None


def _identity(template: str, identities: dict[str, dict[str, str]]) -> dict[str, str]:
    for prefix, who in (
        ("/v1/me", "citizen"),
        ("/v1/auth", "citizen"),
        ("/oauth", "citizen"),
        ("/v1/codes", "partner"),
        ("/v1/venues", "partner"),
        ("/v1/admin", "staff"),
        ("/v1/staff", "staff"),
    ):
        if template.startswith(prefix):
            return identities[who]
    return {}


async def _run(base: str, batch: list[Probe]) -> list[Outcome]:
    limit = asyncio.Semaphore(CONCURRENCY)
    results: list[Outcome] = []

    async with httpx.AsyncClient(base_url=base, timeout=15) as client:

        async def one(probe: Probe) -> None:
            url = probe.path + (f"?{probe.query}" if probe.query else "")
            async with limit:
                try:
                    response = await client.request(probe.method, url, headers=probe.headers, content=probe.content)
                except httpx.HTTPError as exc:
                    results.append(Outcome(probe, 599, f"transport error: {exc.__class__.__name__}"))
                    return
            results.append(Outcome(probe, response.status_code, response.text[:300]))

        await asyncio.gather(*(one(p) for p in batch))
    return results


async def test_hostile_values_in_every_operation_are_never_a_5xx(
    server: ServerProcess,
    sms: SmsGateway,
    pool: Pool,
    vault: Vault,
    key_store: KeyStore,
    settings: Settings,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    tokens = AccessTokens(await KeyManager.open(key_store), settings.identity)
    partner, _ = tokens.issue(
        subject="fuzz-partner", client_id="fuzz-partner", audience=API_AUDIENCE, scope="codes:verify venues:write"
    )
    officer = await StaffAdmin(pool, vault).add(
        "fuzz.officer",
        name="Fuzz Officer",
        phone="13900000000",
        password="a long enough password",
        roles=["admin", "health_officer"],
        region="110101",
    )
    staff, _ = tokens.issue(
        subject=officer.id,
        client_id="onecity-staff",
        audience="onecity-staff",
        extra={"roles": officer.roles, "region": officer.region},
    )
    citizen = await test_fuzz._citizen_token(server, sms, pool, vault)
    identities = {
        "citizen": {"Authorization": f"Bearer {citizen}"},
        "partner": {"Authorization": f"Bearer {partner}"},
        "staff": {"Authorization": f"Bearer {staff}"},
    }
    async with httpx.AsyncClient(base_url=server) as client:
        document = (await client.get("/schema/openapi.json")).json()
        me = (await client.get("/v1/me", headers=identities["citizen"])).json()
    known = {"account_id": me["id"], "phone": "13800000001"}
    prepared = time.monotonic()
    battery = list(probes(Document(document), identities, known))
    print(f"== set-up {prepared - started:.1f} s, battery built in {time.monotonic() - prepared:.1f} s")
    operations = {(p.method, p.path.split("?")[0]) for p in battery}
    fired = time.monotonic()
    outcomes = await _run(server, battery)
    elapsed = time.monotonic() - started
    statuses: dict[int, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    print(
        f"== hostile battery: {len(battery)} requests, {len(operations)} operation paths, "
        f"{elapsed:.1f} s ({time.monotonic() - fired:.1f} s sending)"
    )
    print(f"== statuses: {dict(sorted(statuses.items()))}")
    failures = sorted(
        {
            f"{o.status} {o.probe.method} {o.probe.path[:80]} [{o.probe.label}] {o.body[:160]}"
            for o in outcomes
            if o.status >= 500
        }
    )
    log = (tmp_path / "server.log").read_text(errors="replace") if (tmp_path / "server.log").exists() else ""
    assert not failures, "\n".join([*failures[:60], "--- server log", log[-3000:]])
    # A value PostgreSQL refused would show here even when the answer was a 4xx.
    for line in ("unhandled error", "audit batch not written", "invalid value"):
        assert line not in log, f"server log has {line!r}:\n{log[-3000:]}"
    assert len(battery) > 1000, "the document should drive a large battery"
