"""``slotwise explain PATH... --signals FILE.json``: which rules match for these signals, why.

``slotwise explain --user ID`` shows that user's trigger states from the state store
(``--store URL``, else ``store.url``; the policies are the PATHs, else ``--policies``, else
``proxy.policies``) and why each trigger does or does not fire (slotwise.proxy.triggers.explain).

The signals file is either a JSON object of signal values or
``{"signals": {...}, "events": [{"event": "add_to_cart", "ago": "2h"}], "now": SECONDS}``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError, add_config_option, read_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="policy files or folders")
    parser.add_argument("--signals", metavar="FILE.json", help="the request")
    parser.add_argument("--user", metavar="ID", help="a user's trigger states, from the store")
    parser.add_argument("--store", metavar="URL", help="state store URL (store.url), with --user")
    parser.add_argument("--policies", metavar="DIR", help="policy folder (proxy.policies)")
    add_config_option(parser)
    parser.add_argument("--campaign", metavar="NAME", help="explain this campaign")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--builtin-schema", action="store_true", help="use the built-in signal schema"
    )


def run(args: argparse.Namespace) -> int:
    if args.user is not None:
        return _user(args)
    if args.signals is None or not args.paths:
        raise UsageError("give PATH... and --signals FILE.json, or --user ID (from the store)")
    return _signals(args)


def _user(args: argparse.Namespace) -> int:
    import asyncio

    from slotwise.proxy.learn.export import reading_store
    from slotwise.proxy.triggers.explain import explain_user, render_text

    settings = read_settings(
        args,
        {"store.url": ("--store", args.store), "proxy.policies": ("--policies", args.policies)},
    )
    policy = policies_of(
        args.paths or ([settings.proxy.policies] if settings.proxy.policies else [])
    )
    store = reading_store(settings.store.url)

    async def read() -> dict[str, object]:
        async with store:
            return await explain_user(store, policy, args.user, time.time())

    explained = asyncio.run(read())
    if args.format == "json":
        print(json.dumps(explained, indent=2))
    else:
        print(render_text(explained))
    return EXIT_OK


def policies_of(paths: list[str]) -> CompiledPolicySet:
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.loader import compile_sources, read_sources
    from slotwise.plugins.registry import default_schema

    if not paths:
        raise UsageError("--user needs the policies: PATH..., --policies DIR or proxy.policies")
    sources, problems = read_sources(paths)
    if problems:
        raise PolicyError(problems)
    policy, _ = compile_sources(sources, default_schema())
    return policy


def _signals(args: argparse.Namespace) -> int:
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.explain import (
        SignalsFileError,
        context_from_json,
        explain,
        render_json,
        render_text,
    )
    from slotwise.dsl.loader import compile_sources, read_sources
    from slotwise.dsl.schema_file import builtin_schema
    from slotwise.plugins.registry import default_schema

    try:
        with open(args.signals, encoding="utf-8") as handle:
            document = json.load(handle)
        ctx = context_from_json(document, time.time())
    except OSError as exc:
        raise UsageError(f"cannot read --signals {args.signals}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UsageError(f"--signals {args.signals} is not JSON (UTF-8): {exc}") from None
    except SignalsFileError as exc:
        raise UsageError(f"--signals {args.signals}: {exc}") from None
    schema = builtin_schema() if args.builtin_schema else default_schema()
    sources, problems = read_sources(args.paths)
    if problems:
        raise PolicyError(problems)
    policy, loaded = compile_sources(sources, schema)
    if args.campaign is not None and args.campaign not in {c.name for c in policy.campaigns}:
        known = ", ".join(c.name for c in policy.campaigns) or "none"
        raise UsageError(f"no campaign named {args.campaign!r} (campaigns: {known})")
    selected, explanations = explain(loaded.files, policy, ctx, args.campaign)
    if args.format == "json":
        print(json.dumps(render_json(selected, explanations), indent=2))
    else:
        print(render_text(selected, explanations))
    return EXIT_OK if all(e.agrees for e in explanations) else EXIT_FAILED
