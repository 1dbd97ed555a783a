"""Versioned model files: what the learner publishes and the proxies load.

Layout under the models directory, one folder per campaign::

    models/<campaign>/v000007.vw     the VW model bytes
    models/<campaign>/v000007.json   metadata: version, sha256, family, examples, created, ...
    models/<campaign>/CURRENT        the version that serves (one line: 7)

Every file is written to a temporary name and renamed, so a reader sees a whole file or the
previous one, never half of one. A model whose bytes do not match the checksum in its metadata
is rejected before VW reads it, and the proxy keeps serving what it had. ``rollback`` only
moves CURRENT; no model is deleted by it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vowpalwabbit import Workspace

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import Explore
from slotwise.proxy.bandit.workspace import load_workspace

_CAMPAIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MODEL_FILE = re.compile(r"^v(\d{6,})\.json$")
CURRENT = "CURRENT"
DEFAULT_KEEP = 20
DEFAULT_MODELS_DIR = "var/slotwise/models"  # beside the default state store (var/slotwise/)
MODELS_DIR_ENV = "SLOTWISE_MODELS_DIR"


def default_models_dir() -> Path:
    """``$SLOTWISE_MODELS_DIR``, else var/slotwise/models under the working directory."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One saved model version of a campaign (the metadata file's content)."""

    campaign: str
    version: int
    sha256: str
    family: str
    examples: int
    created: float
    parent: int | None = None
    note: str = ""
    explore_parameter: float | None = None  # the campaign's exploration when it was trained

    @property
    def label(self) -> str:
        """The model version as decisions log it: ``v7``."""
        return f"v{self.version}"


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ModelStore:
    """The models directory: publish, list, read CURRENT, verify, roll back."""

    def __init__(self, root: Path, keep: int = DEFAULT_KEEP) -> None:
        self.root = root
        self.keep = keep

    def _folder(self, campaign: str) -> Path:
        if not _CAMPAIGN_NAME.match(campaign):
            raise BanditError(
                "bad_campaign_name",
                f"campaign name {campaign!r} cannot name a model folder "
                "(letters, digits, _ . - only)",
            )
        return self.root / campaign

    def model_path(self, info: ModelInfo) -> Path:
        return self._folder(info.campaign) / f"v{info.version:06d}.vw"

    def campaigns(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and _CAMPAIGN_NAME.match(p.name)
        )

    def versions(self, campaign: str) -> list[ModelInfo]:
        """Every readable version of a campaign, oldest first."""
        folder = self._folder(campaign)
        if not folder.is_dir():
            return []
        infos = []
        for path in folder.iterdir():
            match = _MODEL_FILE.match(path.name)
            if match is None:
                continue
            try:
                infos.append(ModelInfo(**json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError):
                continue  # a damaged metadata file hides its version; others still list
        return sorted(infos, key=lambda info: info.version)

    def current_version(self, campaign: str) -> int | None:
        try:
            text = (self._folder(campaign) / CURRENT).read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

    def current(self, campaign: str) -> ModelInfo | None:
        version = self.current_version(campaign)
        if version is None:
            return None
        return self.info(campaign, version)

    def info(self, campaign: str, version: int) -> ModelInfo:
        path = self._folder(campaign) / f"v{version:06d}.json"
        try:
            return ModelInfo(**json.loads(path.read_text("utf-8")))
        except FileNotFoundError as exc:
            raise BanditError(
                "unknown_model_version",
                f"campaign {campaign} has no model version {version} in {self.root}; "
                "`slotwise model list` shows the versions",
            ) from exc
        except (OSError, ValueError, TypeError) as exc:
            raise BanditError(
                "corrupt_model", f"{path}: unreadable model metadata ({exc})"
            ) from exc

    def publish(
        self,
        campaign: str,
        workspace: Workspace,
        *,
        family: str,
        examples: int,
        parent: int | None = None,
        note: str = "",
        explore_parameter: float | None = None,
    ) -> ModelInfo:
        """Save the workspace as the campaign's next version and make it CURRENT."""
        folder = self._folder(campaign)
        folder.mkdir(parents=True, exist_ok=True)
        known = [info.version for info in self.versions(campaign)]
        version = max(known, default=0) + 1
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".saving.", suffix=".vw")
        os.close(handle)
        try:
            workspace.save(temporary)
            data = Path(temporary).read_bytes()
        finally:
            Path(temporary).unlink(missing_ok=True)
        info = ModelInfo(
            campaign=campaign,
            version=version,
            sha256=hashlib.sha256(data).hexdigest(),
            family=family,
            examples=examples,
            created=time.time(),
            parent=parent,
            note=note,
            explore_parameter=explore_parameter,
        )
        _write_atomically(self.model_path(info), data)
        _write_atomically(
            folder / f"v{version:06d}.json", json.dumps(asdict(info), indent=2).encode()
        )
        self._set_current(campaign, version)
        self._prune(campaign, version)
        return info

    def rollback(self, campaign: str, to: int | None = None) -> ModelInfo:
        """Make an earlier version CURRENT (by default the one before the current)."""
        current = self.current_version(campaign)
        if to is None:
            earlier = [
                i.version for i in self.versions(campaign) if current and i.version < current
            ]
            if not earlier:
                raise BanditError(
                    "nothing_to_roll_back",
                    f"campaign {campaign} has no model older than the current one (v{current})"
                    if current
                    else f"campaign {campaign} has no models",
                )
            to = max(earlier)
        info = self.info(campaign, to)
        self.verify(info)
        self._set_current(campaign, to)
        return info

    def verify(self, info: ModelInfo) -> bytes:
        """The model bytes, after checking them against the recorded sha256."""
        path = self.model_path(info)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BanditError("corrupt_model", f"{path}: cannot read ({exc})") from exc
        if hashlib.sha256(data).hexdigest() != info.sha256:
            raise BanditError(
                "corrupt_model",
                f"{path}: checksum mismatch, the file changed after it was published; "
                "roll back with `slotwise model rollback` or publish a new version",
            )
        return data

    def open_workspace(self, info: ModelInfo, explore: Explore) -> Workspace:
        """A serving/learning workspace from a verified model of the right family."""
        if info.family != explore.model_family:
            raise BanditError(
                "model_family_mismatch",
                f"model {info.campaign} {info.label} was trained with {info.family} exploration;"
                f" the campaign now explores with {explore.kind}: it starts a new model",
            )
        self.verify(info)
        return load_workspace(self.model_path(info), explore)

    def _set_current(self, campaign: str, version: int) -> None:
        _write_atomically(self._folder(campaign) / CURRENT, f"{version}\n".encode())

    def _prune(self, campaign: str, current: int) -> None:
        versions = [i.version for i in self.versions(campaign)]
        for version in versions[: max(len(versions) - self.keep, 0)]:
            if version == current:
                continue
            folder = self._folder(campaign)
            (folder / f"v{version:06d}.vw").unlink(missing_ok=True)
            (folder / f"v{version:06d}.json").unlink(missing_ok=True)
