"""The bandit's error type: a stable code and a message that says what to do."""

from __future__ import annotations


class BanditError(Exception):
    """A problem with a model, a model store or a bandit configuration.

    ``code`` is stable (``corrupt_model``, ``unknown_explore``, ...) so that callers and tests
    can match on it; the message names what is wrong and what to do about it.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
