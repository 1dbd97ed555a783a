"""One error base for every layer, and the table of stable codes of each area.

Every error a user can meet is a :class:`SlotwiseError`: a stable ``code`` (tools and tests
match on it), a ``message`` (what is wrong), where it is (a file position, a key, an environment
variable, a flag, a URL: optional) and a ``hint`` (what to do: optional). Each subclass belongs
to one :class:`Area`, whose table lists its codes with their meaning and says which exit code
the ``slotwise`` command gives them (1: what was checked is wrong, 2: bad usage); the command
maps errors to exit codes in one place (``slotwise.proxy.cli.main``). docs/errors.md indexes
the codes of every area, and a test fails when one is not documented.

This module imports nothing of slotwise, so the policy language (``dsl``), the proxy and the
plugins can all build on it. The policy language keeps its own table beside its diagnostics
(``slotwise.dsl.errors.POLICY``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final

EXIT_FAILED: Final = 1  # what was checked (a policy, a log, a model, a store) is wrong
EXIT_USAGE: Final = 2  # the command was asked for something it cannot do as asked


@dataclass(frozen=True, slots=True, eq=False)  # one object per area: compared by identity
class Area:
    """A part of slotwise with its own error codes: ``code -> meaning``, and exit codes."""

    name: str
    title: str
    codes: Mapping[str, str]
    docs: str  # the page (under docs/) whose tables document every code
    exit_code: int = EXIT_FAILED
    usage: frozenset[str] = field(default_factory=frozenset)  # codes that are bad usage (2)

    def exit_code_of(self, code: str) -> int:
        return EXIT_USAGE if code in self.usage else self.exit_code


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong among several reported together (a configuration, a plugin set)."""

    code: str
    message: str
    where: str = ""
    hint: str = ""

    def render(self) -> str:
        """``where: message (hint)``."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} ({self.hint})" if self.hint else text


class SlotwiseError(Exception):
    """A problem a user can fix: a stable ``code``, the ``message``, ``where`` and a ``hint``.

    ``area`` (a class attribute) names the table the code belongs to; ``exit_code`` is what
    the ``slotwise`` command exits with when the error ends it.
    """

    area: ClassVar[Area | None] = None
    code: str = "error"

    def __init__(
        self, message: str, *, code: str | None = None, where: str = "", hint: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.where = where
        self.hint = hint

    @property
    def exit_code(self) -> int:
        return self.area.exit_code_of(self.code) if self.area is not None else EXIT_FAILED

    def render(self) -> str:
        """``where: code: message (hint)``, the parts that are known."""
        text = f"{self.code}: {self.message}"
        if self.where:
            text = f"{self.where}: {text}"
        return f"{text} ({self.hint})" if self.hint else text

    def for_command(self, prefix: str) -> str:
        """The text a command prints on stderr, ``prefix`` being ``slotwise VERB``."""
        return f"{prefix}: {self.render()}"


# -- the code tables, one per area (the policy language's is in slotwise.dsl.errors) ---------

CONFIG: Final = Area(
    "config",
    "Configuration",
    {
        "config_invalid": "the configuration has problems; each is listed with where it came "
        "from (the file and key, the environment variable or the flag) and how to fix it",
        "config_unreadable": "the `--config` file does not exist, cannot be read or is not "
        "valid TOML: pass an existing slotwise.toml",
        "unknown_key": "a section or key of slotwise.toml that is not a setting (a close "
        "name is suggested): fix its spelling, see the key table in proxy.md",
        "unknown_variable": "a `SLOTWISE_*` environment variable that is not a setting (a "
        "close name is suggested): fix its spelling or unset it",
        "renamed_variable": "an environment variable under a name that is no longer read: "
        "set the variable the message names instead",
        "invalid_value": "a value of the wrong type, outside its bounds or not valid for "
        "its key (an upstream URL that is not http, a short secret...): the message says what "
        "it must be",
    },
    docs="errors.md",
    exit_code=EXIT_USAGE,
)

USAGE: Final = Area(
    "usage",
    "Command usage",
    {
        "usage": "the command cannot do what was asked: a missing file or directory, an "
        "unknown name, an impossible combination of options; the message names the option",
        "bad_signals_file": "`slotwise explain --signals FILE`: the JSON is not an object of "
        "signals or `{signals, events, now}`",
    },
    docs="errors.md",
    exit_code=EXIT_USAGE,
)

STORE: Final = Area(
    "store",
    "State store",
    {
        "store_error": "the store failed in a way it could not classify: the message quotes it",
        "store_unavailable": "the store did not answer in time or cannot be reached (or did "
        "not confirm a write, which may still complete): check that it runs and is reachable; "
        "the proxy answers 503 with Retry-After meanwhile",
        "store_config": "the store URL or one of its options is wrong (unknown scheme, bad "
        "option): fix `store.url` / `--store`",
        "store_not_found": "a command that only reads the store (`slotwise export`) was given "
        "a sqlite:/// path where no database is: name the file the proxies write",
    },
    docs="errors.md",
    usage=frozenset({"store_config", "store_not_found"}),
)

MODELS: Final = Area(
    "models",
    "Models, learning, evaluation and export",
    {
        "bad_campaign_name": "a campaign name that cannot name a model folder (letters, "
        "digits, `_ . -` only)",
        "bad_current": "a campaign's CURRENT file names no model version that can be loaded: "
        "`slotwise model rollback CAMPAIGN --to N`",
        "bad_explore": "an exploration parameter out of range (epsilon outside 0..1, a "
        "non-positive squarecb or softmax, a bag or cover below 2, first below 1)",
        "bad_holdout": "a holdout share outside 0..1",
        "bad_log_record": "a line of a decision log that is not a valid record: the message "
        "names the file and line",
        "bad_scenario": "a simulator scenario file with a wrong value: the message names it",
        "bad_target_policy": "`slotwise evaluate --candidate probabilities:FILE`: a slot's "
        "probabilities are not numbers in [0, 1] summing to 1, or the file does not cover a "
        "decision, a slot or its choice set: the message names the slot and the lines",
        "bad_time_bound": "`slotwise export --since/--until`: not a time (epoch seconds or ISO "
        "8601), or since is not before until",
        "corrupt_model": "a model file or its metadata is unreadable, truncated or fails its "
        "checksum: roll back to another version or publish a new one",
        "empty_log": "the decision log holds no served decision to evaluate",
        "missing_candidates": "a decision log's served slot has no `candidates`: evaluation "
        "needs the choice set the rules left; the message names the line",
        "model_family_mismatch": "the saved model was trained with another exploration "
        "family than the campaign now uses: the learner starts a new model",
        "model_layout_mismatch": "the saved model was trained with another feature layout "
        "(an earlier slotwise's features and interactions): the campaign starts a new model",
        "models_unwritable": "the models directory cannot be written (permissions, a full "
        "disk): check `--models` / `bandit.models_dir`",
        "no_slots": "a campaign without slots cannot be learned",
        "no_variants": "a slot without variants cannot be learned",
        "nothing_to_roll_back": "`slotwise model rollback`: the campaign has no model older "
        "than the current one (or none at all)",
        "training_log": "`slotwise evaluate`: the model learned from decisions of this log, so "
        "its estimates would be biased upwards: evaluate it on later decisions, or pass "
        "`--allow-training-log`",
        "unknown_explore": "an exploration kind slotwise does not know",
        "unknown_model_version": "`slotwise model rollback --to N`: no such version; `slotwise "
        "model list` shows them",
        "unknown_reward_event": "a reward record names an event that is not a reward",
        "unknown_reward_field": "a reward record or a decision's `outcome` has a key no field "
        "reads (`click` for `clicks`): it would count as no reward; the message names the line",
        "unreadable_log": "the decision log file cannot be opened",
        "unreadable_scenario": "the scenario file cannot be read",
        "unreadable_target_policy": "the file of `--candidate probabilities:FILE` cannot be read",
        "unwritable_output": "`slotwise export --output FILE`: a directory, a folder that does "
        "not exist, no permission, or the disk filled while writing (nothing is left behind)",
    },
    docs="errors.md",
    usage=frozenset(
        {
            "bad_campaign_name",
            "bad_time_bound",
            "nothing_to_roll_back",
            "training_log",
            "unknown_model_version",
            "unreadable_log",
            "unreadable_target_policy",
            "unwritable_output",
        }
    ),
)

PLUGINS: Final = Area(
    "plugins",
    "Signal providers",
    {
        "unknown_provider": "the selection or the configuration names a provider that is not "
        "installed",
        "duplicate_provider": "two packages register the same provider name",
        "provider_import": "a provider's entry point cannot be imported",
        "provider_declaration": "a provider class declares something wrong (name, signal, "
        "type, bounds...)",
        "signal_conflict": "two providers declare the same signal",
        "provider_config": "a `[plugins.NAME]` table does not validate",
        "provider_init": "a provider's `__init__` failed",
        "provider_start": "a provider's `start()` failed or took too long",
    },
    docs="plugins.md",
)

HTTP: Final = Area(
    "http",
    "The proxy's own HTTP answers",
    {
        "headers_too_large": "431: the request headers exceed `proxy.max_header_bytes`",
        "body_too_large": "413: the request body exceeds `proxy.max_body_bytes`",
        "body_timeout": "408: the request body did not arrive whole within `proxy.body_timeout`",
        "incomplete_body": "400: the request body ended early (client gone, malformed chunking)",
        "bad_host": "400: an HTTP/1.1 request without a Host header or with several "
        "(RFC 9112 section 3.2)",
        "bad_request_target": "400: a request target that is not a path, holds a byte that "
        "must be percent-encoded, or has a `.` or `..` segment (send the resolved path)",
        "not_found": "404: no endpoint of the proxy's own at this `/_sw/` path",
        "method_not_allowed": "405: the `/_sw/` endpoint does not answer this method (`Allow` "
        "lists the ones it does)",
        "invalid_click_link": "400: a `/_sw/click` link whose signature does not match "
        "(never an open redirect)",
        "upstream_connect": "502: the upstream refused the connection or cannot be reached",
        "upstream_connect_timeout": "504: no connection to the upstream within "
        "`upstream.connect_timeout`",
        "upstream_pool_timeout": "504: every allowed upstream connection stayed busy for "
        "`upstream.connect_timeout`",
        "upstream_timeout": "504: no response headers within `upstream.timeout`",
        "upstream_read_timeout": "504: the upstream's body stalled for `upstream.read_timeout`",
        "upstream_protocol": "502: the upstream answered with broken HTTP",
        "upstream_disconnected": "502: the upstream connection dropped mid-exchange",
        "rate_limited": "429: this client sent more to the event endpoints than "
        "`events.rate_limit` allows: retry after Retry-After",
        "metrics_private": "403: `/_sw/metrics` answers loopback clients and the admin token "
        "unless `proxy.metrics_public`",
        "unauthorized": "401: `/_sw/metrics` was sent a wrong admin token",
    },
    docs="errors.md",
)

EVENTS: Final = Area(
    "events",
    "Event endpoints",
    {
        "invalid_json": "400: the body is not JSON",
        "invalid_batch": "400: not a batch of events, or no events",
        "invalid_events": "400: events of the batch fail validation; nothing was stored",
        "unknown_currency": "400: an event's currency has no rate to `offers.base_currency` "
        "(add it to `offers.rates`); nothing was stored",
        "invalid_event": "400: the pixel's parameters are invalid",
        "invalid_user_id": "400: not a valid user id",
        "invalid_profile": "422: the profile was refused; nothing was stored",
        "unauthorized": "401: the admin API needs a valid admin token",
        "admin_loopback_only": "403: the admin API answers on loopback only",
        "admin_disabled": "404: the admin API is off without an admin token",
        "admin_throttled": "429: too many failed admin token attempts from this client "
        "address (5 within 60 s): retry after Retry-After",
        "user_erased": "409: the user was erased; their profile is not stored again",
        "event_too_large": "413: an event exceeds `events.max_event_bytes`",
        "batch_too_large": "413: the body exceeds `events.max_batch_bytes`",
        "too_many_events": "413: the batch has more than `events.max_batch_events` events",
        "profile_too_large": "413: a profile body is too large",
        "unsupported_media_type": "415: the body is not JSON",
        "body_timeout": "408: the body did not arrive within `events.body_timeout`",
        "incomplete_body": "400: the body ended early",
        "store_unavailable": "503: the store cannot be reached; retry after Retry-After",
        "unknown_audience": "404: no trigger or segment of that name in the serving policy (an "
        "audience is one trigger's users, or `segment:NAME`'s)",
        "invalid_format": "400: an audience export's format is json, jsonl or csv",
        "invalid_price_update": "400: the price updates were refused; nothing was fired",
        "not_reverted": "404: re-enabling a campaign no guardrail reverted (reports.md)",
        "no_dashboard": "404: this process has no dashboard (`dashboard.enabled = false`, or a "
        "test app without a store)",
    },
    docs="errors.md",
)

NOTIFY: Final = Area(
    "notify",
    "Notifications",
    {
        "unknown_endpoint": 'a `notify webhook "NAME"` names no `[webhooks.NAME]` table: add '
        "it, or fix the name in the policy",
        "bad_endpoint": "a `[webhooks.NAME]` table is wrong (no http(s) `url`, an unknown key, "
        "no `secrets_env`, a bad timeout): the message names the key",
        "missing_secret": "an environment variable a `[webhooks.NAME]` `secrets_env` or "
        "`notify.smtp_password_env` names is not set in the proxy's environment",
        "bad_secret": "a webhook secret is not `whsec_` followed by base64 (at least 24 bytes "
        "once decoded)",
        "unknown_template": 'a `notify email "NAME"` has no `NAME.subject.txt`, `NAME.txt` '
        "and `NAME.html` in `notify.templates_dir`",
        "bad_template": "an e-mail template does not compile (Jinja2 syntax): the message names "
        "the file and line",
        "no_smtp": "the policies send e-mail but `notify.smtp_host` or `notify.smtp_from` is "
        "not set",
        "unknown_audience": "an `[audience_pushes.NAME]` table's `audience` is not a trigger or "
        "`segment:NAME` of the policies (`slotwise audiences list` names them)",
        "unknown_dead_letter": "`slotwise notify replay KEY`: no dead letter has that key "
        "(`slotwise notify dead-letters` lists them)",
    },
    docs="errors.md",
    usage=frozenset({"unknown_dead_letter"}),
)

RECS: Final = Area(
    "recs",
    "Catalogue and recommendations",
    {
        "invalid_feed": "the catalogue feed (`catalogue.feed`) has a bad item or cannot be "
        "read: the catalogue keeps what it had (at start: the proxy does not start)",
        "invalid_item": "422: the admin API refused an item or a change; nothing was applied",
        "unknown_item": "404: no catalogue item with this id",
        "invalid_events_file": "`slotwise recs replay`: a line of the events file is not an "
        "event of the `/_sw/events` schema, or the file cannot be read",
    },
    docs="errors.md",
    usage=frozenset({"invalid_events_file"}),
)

# every area defined here; the policy language's is slotwise.dsl.errors.POLICY
AREAS: Final = (CONFIG, USAGE, STORE, MODELS, PLUGINS, HTTP, EVENTS, NOTIFY, RECS)
