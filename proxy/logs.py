"""The proxy's log lines: one JSON object per line, or plain text for a person at a terminal.

``[log]`` chooses (slotwise.proxy.config): ``format`` ``json``, ``text`` or ``auto`` (text when
stderr is a terminal, JSON otherwise), ``level``, ``access`` (one line per proxied request) and
``repeat_interval``. :func:`configure` installs one handler on the ``slotwise`` loggers (and on
granian's, so that a server's every line has one shape) in each worker process.

A JSON line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``,
then whichever of ``request_id``, ``campaign``, ``cause``, ``suppressed`` the line carries
(given as ``extra=``), and ``exception`` (the traceback) when there is one.

No line is repeated more often than once per ``repeat_interval`` (60 s): the same message from
the same logger is held back in between and counted, and the next one that goes out says how
many were (``suppressed``). Fail-opens are limited before a record is even made
(:class:`FailOpenLog`): a storm of them costs a clock read each, not a log record each.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from slotwise.proxy.config.sections import LogConfig
    from slotwise.proxy.exchange import Exchange

FIELDS: Final = ("request_id", "campaign", "cause", "suppressed", "client", "method", "path",
                 "status", "duration_ms", "worker")  # fmt: skip
_MAX_REMEMBERED: Final = 10_000  # distinct lines held back at once (a bound, not a target)
ACCESS: Final = "slotwise.access"
_ROOTS: Final = ("slotwise", "_granian", "granian.access")


def _time(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` and the traceback below."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{name}={record.__dict__[name]}"
            for name in FIELDS
            if record.__dict__.get(name) is not None
        )
        text = f"{_time(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            text += f" [{fields}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class RepeatFilter(logging.Filter):
    """Lets one of each line (logger, level, message) through per ``interval`` seconds; the
    next one to go out carries ``suppressed``, how many were held back."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # -> (until, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.interval <= 0 or record.name == ACCESS:  # access lines are all wanted
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = time.monotonic()
        until, held = self._seen.get(key, (0.0, 0))
        if now < until:
            self._seen[key] = (until, held + 1)
            return False
        if len(self._seen) >= _MAX_REMEMBERED:
            self._seen = {k: v for k, v in self._seen.items() if v[0] > now}
            if len(self._seen) >= _MAX_REMEMBERED:
                self._seen.clear()
        self._seen[key] = (now + self.interval, 0)
        if held:
            record.suppressed = held
        return True


def formatter(kind: str, stream: IO[str] | None = None) -> logging.Formatter:
    """The formatter ``log.format`` names; ``auto`` looks at ``stream`` (stderr)."""
    if kind == "auto":
        target = stream if stream is not None else sys.stderr
        kind = "text" if getattr(target, "isatty", lambda: False)() else "json"
    return TextFormatter() if kind == "text" else JsonFormatter()


def configure(config: LogConfig, stream: IO[str] | None = None) -> logging.Handler:
    """One handler for slotwise's and granian's loggers in this process (a worker, the
    learner); returns it. Replaces a handler an earlier call installed."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(config.format, stream))
    handler.addFilter(RepeatFilter(config.repeat_interval))
    handler.set_name("slotwise")
    level = getattr(logging, config.level.upper())
    for name in _ROOTS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "slotwise"]:
            logger.removeHandler(old)
        if name != "slotwise":  # granian's own handlers go: its lines take our shape
            for old in list(logger.handlers):
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return handler


def granian_config(config: LogConfig) -> dict[str, Any]:
    """granian's ``log_dictconfig``: its own lines (start, workers, stops) in our shape."""
    kind = config.format
    if kind == "auto":
        kind = "text" if sys.stderr.isatty() else "json"
    formatter_class = "TextFormatter" if kind == "text" else "JsonFormatter"
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "slotwise",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"slotwise": {"()": f"slotwise.proxy.logs.{formatter_class}"}},
        "handlers": {"console": handler, "access": handler},
        "loggers": {
            "_granian": {
                "handlers": ["console"],
                "level": config.level.upper(),
                "propagate": False,
            },
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


class FailOpenLog:
    """Logs fail-opens: per cause, the first, then at most one per ``interval`` seconds with how
    many went unlogged in between (the metrics count every one); ``engine_error`` with its
    exception, as any cause an exception raised (``chooser_error``). The checks before a record
    is made are a clock read and a dict look-up."""

    def __init__(self, interval: float = 60.0, logger: str = "slotwise.proxy.fail_open") -> None:
        self.interval = interval
        self.log = logging.getLogger(logger)
        self._next: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def note(self, x: Exchange) -> None:
        cause = x.cause or "unknown"
        now = time.monotonic()
        if now < self._next.get(cause, 0.0):
            self._skipped[cause] = self._skipped.get(cause, 0) + 1
            return
        self._next[cause] = now + self.interval
        skipped = self._skipped.pop(cause, 0)
        campaigns = sorted({record.campaign for record, _ in x.records or ()})
        request_id = x.request_id.decode("ascii", "replace") or None
        extra: Mapping[str, object] = {
            "request_id": request_id,
            "cause": cause,
            "campaign": ",".join(campaigns) or None,
            "path": x.path,
            "suppressed": skipped or None,
        }
        error = x.error  # an engine_error's exception, or what a FailOpen was raised from
        if error is not None and type(error).__name__ == "FailOpen":
            error = error.__cause__ or error.__context__
        self.log.warning(  # the request id makes each line its own (see RepeatFilter)
            "personalisation failed open (%s) on request %s: the upstream's answer went out "
            "unchanged",
            cause,
            request_id,
            extra=extra,
            exc_info=(type(error), error, error.__traceback__) if error is not None else None,
        )
