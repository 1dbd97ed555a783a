"""E-mail templates: ``NAME.subject.txt``, ``NAME.txt`` and ``NAME.html`` in the templates
directory, rendered by a sandboxed Jinja2 with the user's traits and the offer.

The sandbox keeps a template from reaching Python internals; the HTML environment autoescapes
every value (traits come from users); an undefined name is an error, not an empty string, so a
template that names a trait the user lacks fails (a dead letter with its reason) instead of
sending "Hello ,".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from slotwise.proxy.notify.errors import NotifyError

PARTS = ("subject.txt", "txt", "html")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class TemplateRenderError(Exception):
    """A template failed at render time (an undefined trait, a sandbox refusal...)."""


class Templates:
    """The templates of one directory, compiled on first use and kept."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        loader = jinja2.FileSystemLoader(str(directory))
        common: dict[str, Any] = {"loader": loader, "undefined": jinja2.StrictUndefined}
        self._text = SandboxedEnvironment(autoescape=False, **common)
        self._html = SandboxedEnvironment(autoescape=True, **common)

    def check(self, name: str) -> None:
        """NotifyError when a part of template ``name`` is missing or does not compile."""
        for part in PARTS:
            self._template(name, part)

    def render(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        """The e-mail; NotifyError (missing, syntax) or TemplateRenderError (at render)."""
        subject, text, html = (self._template(name, part) for part in PARTS)
        try:
            return RenderedEmail(
                # one line: a newline in a subject would inject headers
                " ".join(subject.render(context).split()),
                text.render(context),
                html.render(context),
            )
        except jinja2.TemplateError as exc:
            raise TemplateRenderError(f"{name}: {type(exc).__name__}: {exc}") from None

    def _template(self, name: str, part: str) -> jinja2.Template:
        filename = f"{name}.{part}"
        if "/" in name or "\\" in name or name.startswith("."):
            raise NotifyError(f"{name!r} is not a template name", code="unknown_template")
        environment = self._html if part == "html" else self._text
        try:
            return environment.get_template(filename)
        except jinja2.TemplateNotFound:
            raise NotifyError(
                f"no template file {filename} in {self.directory}",
                code="unknown_template",
                hint=f"write {', '.join(f'{name}.{p}' for p in PARTS)} in notify.templates_dir",
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            where = f"{self.directory / filename}:{exc.lineno}"
            raise NotifyError(str(exc.message), code="bad_template", where=where) from None
