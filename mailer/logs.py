"""Log lines: readable text by default, or one JSON object per line for a log collector
(`--log-format json` or MAILER_LOG_FORMAT=json on serve, scheduler, send, sends work and
bounces fetch).

A JSON line holds `time`, `level`, `event` (the message), `logger`, and the ids it concerns,
which callers pass as `extra={"send": 3, "batch": 2}` (IDS). No address or name is logged at
INFO or above: callers log ids, never people, and a filter masks anything shaped like an email
address that slips into a message or an exception anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import Any

FORMATS = ("text", "json")
IDS = ("send", "schedule", "batch", "worker", "sent", "failed", "pending", "status", "count",
       "seconds", "theme")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
OURS = ("mailer", "uvicorn", "uvicorn.error", "uvicorn.access")  # logged from INFO up
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
MASK = "[address]"


def mask(text: str) -> str:
    """`text` with every email address in it replaced by MASK."""
    return _ADDRESS.sub(MASK, text)


class NoAddresses(logging.Filter):
    """Masks email addresses in every record's message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and "@" in record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        line.update({key: getattr(record, key) for key in IDS if hasattr(record, key)})
        if record.exc_info or record.exc_text:
            line["error"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(line, ensure_ascii=False, default=str)


class Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record, not the stream it was
    made with (a command run inside another program's captured output must not log into a
    closed stream afterwards)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def handler(fmt: str) -> logging.Handler:
    """A handler to standard error in the given format, with the address filter."""
    out = Stderr()
    out.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    out.addFilter(NoAddresses())
    return out


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send every log record through one handler: mailer's and uvicorn's from `level` up, the
    libraries' (Alembic, httpx …) from WARNING, so that their chatter stays out."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(fmt))
    root.setLevel(logging.WARNING)
    for name in OURS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if name.startswith("uvicorn"):
            logger.handlers.clear()
            logger.propagate = True


def uvicorn_config(fmt: str) -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers hand their records to ours (also in workers, which
    configure logging anew from this dictionary)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"no_addresses": {"()": NoAddresses}},
        "formatters": {"mailer": {"()": JsonLines} if fmt == "json"
                       else {"format": TEXT_FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "mailer", "filters": ["no_addresses"]}},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {name: {"handlers": [], "propagate": True, "level": "INFO"} for name in OURS},
    }
