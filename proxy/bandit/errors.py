"""The bandit's error type: a stable code and a message that says what to do."""

from __future__ import annotations

from slotwise.errors import MODELS, SlotwiseError


class BanditError(SlotwiseError):
    """A problem with a model, a model store or a bandit configuration.

    ``code`` is stable (``corrupt_model``, ``unknown_explore``, ...; slotwise.errors.MODELS
    lists them) so that callers and tests can match on it; the message names what is wrong and
    what to do about it. ``str()`` is ``code: message``.
    """

    area = MODELS

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
