"""The JSON Schemas of the API's requests, and the one check of a request against them.

The schemas written here go into the OpenAPI document unchanged, and every parameter and body
is checked against the same schema before a handler sees it, so the document and the checks
cannot disagree. Only the part of JSON Schema the API uses is understood: type, enum,
properties, required, additionalProperties, minProperties, items, minItems, maxItems, minLength,
maxLength, pattern, minimum, maximum and the format date-time. A value that breaks
one gets one message naming its field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES

from mailer.models import TEXT_MAX

Schema = dict[str, Any]

TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "object": (dict,), "null": (type(None),),
}
# RFC 3339 date-time (the JSON Schema format): a seconds field of 60 is a leap second.
DATE_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
NO_CONTROLS = "^[^\\u0000-\\u001f\\u007f\\u0085\\u2028\\u2029]*$"
INTEGER = re.compile(r"-?\d{1,18}")


PATTERN_MEANING: dict[str, str] = {}


def _any_case(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# The addresses the API takes, as a pattern the document publishes: a strict subset of what
# mailer.addresses accepts (a dot-atom of at most 64 characters before the @, host name labels
# without "--", a top-level domain that ends with a letter and is no special-use name such as
# .test or .local), so a request that fits the schema is never refused for its address. Bounded
# repeats rather than look-aheads keep it easy for a fuzzer to fill.
_ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = f"{_ATEXT}{{1,32}}(?:\\.{_ATEXT}{{1,15}}){{0,2}}"
_LABEL = "[A-Za-z0-9]{1,20}(?:-[A-Za-z0-9]{1,20}){0,2}"
_TOP_LABEL = "(?:[A-Za-z0-9]{1,20}-){0,2}[A-Za-z0-9]{0,19}[A-Za-z]"
_RESERVED = "|".join(_any_case(name) for name in sorted(SPECIAL_USE_DOMAIN_NAMES))
EMAIL_PATTERN = (f"^{_LOCAL}@(?:{_LABEL}\\.){{1,4}}(?!(?:{_RESERVED})$){_TOP_LABEL}$")
PATTERN_MEANING.update({
    NO_CONTROLS: "must not hold line breaks or control characters",
    EMAIL_PATTERN: "must be an email address such as naam@voorbeeld.nl",
})


def text(description: str, max_length: int = TEXT_MAX) -> Schema:
    """A one-line text a person typed: no line breaks or control characters."""
    return {"type": "string", "maxLength": max_length, "pattern": NO_CONTROLS,
            "description": description}


def one_of(words: Iterable[str], description: str) -> Schema:
    return {"type": "string", "enum": list(words), "description": description}


def obj(properties: dict[str, Schema], required: Iterable[str] = (), **more: Any) -> Schema:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False, **more}


def array(items: Schema, description: str = "", **more: Any) -> Schema:
    return {"type": "array", "items": items, **({"description": description} if description else {}),
            **more}


def nullable(schema: Schema) -> Schema:
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def parse_date_time(value: str) -> dt.datetime | None:
    """An RFC 3339 date-time as aware UTC; None when it is not one (or cannot be stored)."""
    found = DATE_TIME.fullmatch(value)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found[i]) for i in range(1, 7))
    fraction, zone = found[7] or "", found[8].upper()
    try:
        offset = dt.timedelta(0) if zone == "Z" else (
            (-1 if zone[0] == "-" else 1) * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:])))
        moment = dt.datetime(year, month, day, hour, minute, min(second, 59),
                             int((fraction[1:] + "000000")[:6]), dt.timezone(offset))
        return moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


def _is(kind: str, value: Any) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, TYPES[kind])


def _format_problem(fmt: str, value: str) -> str | None:
    if fmt == "date-time" and parse_date_time(value) is None:
        return "must be a date and time such as 2026-12-01T09:00:00+01:00"
    return None


def _string_problem(schema: Schema, value: str) -> str | None:
    if len(value) < schema.get("minLength", 0):
        return f"must be at least {schema['minLength']} characters long"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"must be at most {schema['maxLength']} characters long"
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern, value):
        return PATTERN_MEANING.get(pattern, f"must match {pattern}")
    return _format_problem(schema["format"], value) if "format" in schema else None


def _number_problem(schema: Schema, value: float) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"must be at least {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"must be at most {schema['maximum']}"
    return None


def problems(schema: Schema, value: Any, field: str = "") -> list[tuple[str, str]]:
    """(field, message) for each way `value` breaks `schema`; [] when it fits."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(kind, value) for kind in kinds):
            return [(field, f"must be of type {' or '.join(kinds)}")]
    if "enum" in schema and value not in schema["enum"]:
        return [(field, "must be one of " + ", ".join(map(str, schema["enum"])))]
    found: str | None = None
    if isinstance(value, str):
        found = _string_problem(schema, value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found = _number_problem(schema, value)
    elif isinstance(value, list):
        return _array_problems(schema, value, field)
    elif isinstance(value, dict):
        return _object_problems(schema, value, field)
    return [(field, found)] if found else []


def _array_problems(schema: Schema, value: list, field: str) -> list[tuple[str, str]]:
    if len(value) < schema.get("minItems", 0):
        return [(field, f"must have at least {schema['minItems']} item(s)")]
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return [(field, f"must have at most {schema['maxItems']} items")]
    items = schema.get("items", {})
    return [found for item in value for found in problems(items, item, field)][:1]


def _object_problems(schema: Schema, value: dict, field: str) -> list[tuple[str, str]]:
    prefix = f"{field}." if field else ""
    properties = schema.get("properties", {})
    found = [(prefix + name, "is required") for name in schema.get("required", [])
             if name not in value]
    if len(value) < schema.get("minProperties", 0):
        found.append((field, f"must name at least {schema['minProperties']} of "
                             + ", ".join(properties)))
    for name, item in value.items():
        if name in properties:
            found += problems(properties[name], item, prefix + name)
        elif schema.get("additionalProperties", True) is False:
            found.append((prefix + name, "is not a field of this request"))
    return found


def from_query(schema: Schema, raw: str) -> Any:
    """A query or path value as the type its schema gives (a string that is no integer stays a
    string, so the check names it)."""
    if schema.get("type") == "integer" and INTEGER.fullmatch(raw.strip()):
        return int(raw)
    return raw
