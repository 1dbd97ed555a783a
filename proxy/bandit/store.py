"""Versioned model files: what the learner publishes and the proxies load.

Layout under the models directory, one folder per campaign::

    models/<campaign>/v000007.vw     the VW model bytes
    models/<campaign>/v000007.json   metadata: version, sha256, family, examples, created, ...
    models/<campaign>/CURRENT        the version that serves (one line: 7)

Every file is written to a temporary name and renamed, so a reader sees a whole file or the
previous one, never half of one. A model whose bytes do not match the checksum in its metadata
is rejected before VW reads it, and the proxy keeps serving what it had. ``rollback`` only
moves CURRENT; no model is deleted by it.

The metadata's ``training`` records what the version's lineage learned from (its decisions'
time range and a hash sample of their ids, slotwise.proxy.bandit.training), so that
``slotwise evaluate`` can refuse to evaluate a model on the log it was trained on.

Metadata is decoded with its types checked (``ModelInfo``) and then its values (version and
campaign match the file, a known family, finite numbers): a damaged ``vN.json`` makes that one
version unreadable (``corrupt_model``), listed by ``scan`` with the reason, never a crash later
when someone reads a field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec
from vowpalwabbit import Workspace

from slotwise.proxy.bandit.arm_means import MeansData
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import KINDS, explore_from_policy, model_family
from slotwise.proxy.bandit.training import TrainingData
from slotwise.proxy.bandit.workspace import LAYOUT, load_workspace
from slotwise.proxy.files import write_atomically
from slotwise.types import Explore

CAMPAIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MODEL_FILE = re.compile(r"^v(\d{6,})\.json$")
_VERSION_FILE = re.compile(r"^v(\d{6,})\.(?:json|vw)$")
_CURRENT_TEXT = re.compile(r"^[0-9]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
FAMILIES = frozenset(model_family(explore_from_policy(kind, None)) for kind in KINDS)
CURRENT = "CURRENT"
DEFAULT_KEEP = 20
# where learn, model and evaluate keep models when bandit.models_dir is not set (beside the
# default state store, var/slotwise/)
DEFAULT_MODELS_DIR = "var/slotwise/models"


def models_dir(configured: str) -> Path:
    """The models directory: ``bandit.models_dir``, else var/slotwise/models (relative to the
    working directory)."""
    return Path(configured or DEFAULT_MODELS_DIR)


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
    # what the lineage learned from (slotwise.proxy.bandit.training); None: not recorded
    training: TrainingData | None = None
    # the feature layout the model was trained with (slotwise.proxy.bandit.workspace.LAYOUT);
    # metadata written before layouts were recorded has none: layout 1
    layout: int = 1
    # an offer set's mean reward per (context cell, arm) (slotwise.proxy.bandit.arm_means);
    # None: a campaign's model, or one published before offer sets kept them
    arm_means: MeansData | None = None

    @property
    def label(self) -> str:
        """The model version as decisions log it: ``v7``."""
        return f"v{self.version}"


@dataclass(frozen=True, slots=True)
class DamagedVersion:
    """A version whose metadata cannot be read: listed with why, never served or rolled to."""

    campaign: str
    version: int
    error: BanditError


def _metadata_problem(info: ModelInfo, campaign: str, version: int) -> str | None:
    """What is wrong with well-typed metadata, or None; each check guards a later reader."""
    if info.campaign != campaign or info.version != version:
        return f"it says {info.campaign} v{info.version}, the file is {campaign} v{version}"
    if not _SHA256.match(info.sha256):
        return f"sha256 {info.sha256!r} is not 64 hex digits"
    if info.examples < 0 or (info.parent is not None and info.parent < 1):
        return "examples and parent must not be negative"
    if info.layout < 1:
        return f"layout {info.layout} is not a feature layout (1, 2, ...)"
    if not math.isfinite(info.created):
        return f"created {info.created} is not a time"
    if info.family not in FAMILIES:
        return f"unknown family {info.family!r} (known: {', '.join(sorted(FAMILIES))})"
    try:
        explore_from_policy(info.family, info.explore_parameter)
    except BanditError as error:
        return f"explore_parameter: {error.message}"
    if info.arm_means is not None and (problem := info.arm_means.problem()) is not None:
        return problem
    return info.training.problem() if info.training is not None else None


def read_info(path: Path, campaign: str, version: int) -> ModelInfo:
    """The metadata in ``path``, checked; corrupt_model (naming the file and why) otherwise."""
    try:
        info = msgspec.json.decode(path.read_bytes(), type=ModelInfo)
    except FileNotFoundError:
        raise
    except (OSError, msgspec.MsgspecError, UnicodeDecodeError, RecursionError) as exc:
        raise BanditError("corrupt_model", f"{path}: unreadable model metadata ({exc})") from exc
    problem = _metadata_problem(info, campaign, version)
    if problem is not None:
        raise BanditError("corrupt_model", f"{path}: bad model metadata: {problem}")
    return info


def _bad_current(campaign: str, what: str, numbers: set[int]) -> BanditError:
    if not numbers:
        advice = "delete it: the learner's next publish writes it"
    else:
        advice = (
            f"set it with `slotwise model rollback {campaign} --to N`"
            " (`slotwise model list` shows the versions)"
        )
    return BanditError("bad_current", f"{what}: it names no model of {campaign} to load; {advice}")


class ModelStore:
    """The models directory: publish, list, read CURRENT, verify, roll back."""

    def __init__(self, root: Path, keep: int = DEFAULT_KEEP) -> None:
        self.root = root
        self.keep = keep

    def _folder(self, campaign: str) -> Path:
        if not CAMPAIGN_NAME.match(campaign):
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
            p.name for p in self.root.iterdir() if p.is_dir() and CAMPAIGN_NAME.match(p.name)
        )

    def _numbers(self, campaign: str) -> set[int]:
        """Every version some file is named for, readable or not (so none is ever reused)."""
        folder = self._folder(campaign)
        if not folder.is_dir():
            return set()
        matches = (_VERSION_FILE.match(path.name) for path in folder.iterdir())
        return {int(match.group(1)) for match in matches if match is not None}

    def scan(self, campaign: str) -> tuple[list[ModelInfo], list[DamagedVersion]]:
        """Every version with metadata, oldest first: the readable ones and the damaged ones."""
        folder = self._folder(campaign)
        if not folder.is_dir():
            return [], []
        infos: list[ModelInfo] = []
        damaged: list[DamagedVersion] = []
        for path in folder.iterdir():
            match = _MODEL_FILE.match(path.name)
            if match is None:
                continue
            version = int(match.group(1))
            try:
                infos.append(read_info(path, campaign, version))
            except FileNotFoundError:
                continue  # pruned since the listing
            except BanditError as error:
                damaged.append(DamagedVersion(campaign, version, error))
        infos.sort(key=lambda info: info.version)
        damaged.sort(key=lambda entry: entry.version)
        return infos, damaged

    def versions(self, campaign: str) -> list[ModelInfo]:
        """Every readable version of a campaign, oldest first (``scan`` also gives the rest)."""
        return self.scan(campaign)[0]

    def current_version(self, campaign: str) -> int | None:
        """The version CURRENT names, None if it names none (``checked_current`` says why)."""
        try:
            text = (self._folder(campaign) / CURRENT).read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if _CURRENT_TEXT.match(text) else None

    def checked_current(self, campaign: str) -> int | None:
        """The version CURRENT names; None only when the campaign has no model files at all.

        A CURRENT that is missing, empty, garbled or names a version without files, while
        versions exist, is ``bad_current``: nothing of the campaign serves from it.
        """
        path = self._folder(campaign) / CURRENT
        numbers = self._numbers(campaign)
        try:
            text = path.read_text("ascii").strip()
        except FileNotFoundError:
            if not numbers:
                return None
            raise _bad_current(campaign, f"{path} is missing", numbers) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _bad_current(campaign, f"{path} cannot be read ({exc})", numbers) from exc
        if not _CURRENT_TEXT.match(text):
            what = "is empty" if not text else f"holds {text[:40]!r}, not a version number"
            raise _bad_current(campaign, f"{path} {what}", numbers)
        if int(text) not in numbers:
            raise _bad_current(campaign, f"{path} names v{int(text)}, which has no files", numbers)
        return int(text)

    def current(self, campaign: str) -> ModelInfo | None:
        version = self.current_version(campaign)
        if version is None:
            return None
        return self.info(campaign, version)

    def info(self, campaign: str, version: int) -> ModelInfo:
        path = self._folder(campaign) / f"v{version:06d}.json"
        try:
            return read_info(path, campaign, version)
        except FileNotFoundError as exc:
            raise BanditError(
                "unknown_model_version",
                f"campaign {campaign} has no model version {version} in {self.root}; "
                "`slotwise model list` shows the versions",
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
        training: TrainingData | None = None,
        arm_means: MeansData | None = None,
    ) -> ModelInfo:
        """Save the workspace as the campaign's next version and make it CURRENT."""
        folder = self._folder(campaign)
        folder.mkdir(parents=True, exist_ok=True)
        version = max(self._numbers(campaign), default=0) + 1
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
            training=training,
            layout=LAYOUT,
            arm_means=arm_means,
        )
        self._write_version(info, data)
        self._set_current(campaign, version)
        self._prune(campaign, version)
        return info

    def _write_version(self, info: ModelInfo, data: bytes) -> None:
        model = self.model_path(info)
        write_atomically(model, data)
        try:
            write_atomically(
                model.with_suffix(".json"), json.dumps(asdict(info), indent=2).encode()
            )
        except BaseException:
            model.unlink(missing_ok=True)  # a model without metadata is half a version
            raise

    def rollback(self, campaign: str, to: int | None = None) -> ModelInfo:
        """Make an earlier version CURRENT (by default the one before the current)."""
        if to is None:
            to = self._previous(campaign)
        try:
            info = self.info(campaign, to)
            self._checked_bytes(info)
        except BanditError as error:
            if error.code != "corrupt_model":
                raise
            raise BanditError(
                "corrupt_model",
                f"cannot roll {campaign} back to v{to}: {error.message}; CURRENT is unchanged;"
                f" pick another version with `slotwise model rollback {campaign} --to N`"
                " (`slotwise model list` shows them)",
            ) from error
        self._set_current(campaign, to)
        return info

    def _previous(self, campaign: str) -> int:
        current = self.checked_current(campaign)
        if current is None:
            raise BanditError("nothing_to_roll_back", f"campaign {campaign} has no models")
        earlier = [i.version for i in self.versions(campaign) if i.version < current]
        if not earlier:
            raise BanditError(
                "nothing_to_roll_back",
                f"campaign {campaign} has no intact model older than the current one (v{current})",
            )
        return max(earlier)

    def verify(self, info: ModelInfo) -> bytes:
        """The model bytes, after checking them against the recorded sha256."""
        try:
            return self._checked_bytes(info)
        except BanditError as error:
            raise BanditError(
                error.code,
                f"{error.message}; roll back with `slotwise model rollback {info.campaign}`"
                " or publish a new version",
            ) from error

    def _checked_bytes(self, info: ModelInfo) -> bytes:
        path = self.model_path(info)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BanditError("corrupt_model", f"{path}: cannot read ({exc})") from exc
        if hashlib.sha256(data).hexdigest() != info.sha256:
            raise BanditError(
                "corrupt_model",
                f"{path}: checksum mismatch, the file changed after it was published",
            )
        return data

    def open_workspace(
        self, info: ModelInfo, explore: Explore, *, training: bool = False
    ) -> Workspace:
        """A serving/learning workspace from a verified model of the right family."""
        if info.family != model_family(explore):
            raise BanditError(
                "model_family_mismatch",
                f"model {info.campaign} {info.label} was trained with {info.family} exploration;"
                f" the campaign now explores with {explore.kind}: it starts a new model",
            )
        if info.layout != LAYOUT:
            raise BanditError(
                "model_layout_mismatch",
                f"model {info.campaign} {info.label} was trained with feature layout "
                f"{info.layout}; this slotwise builds layout {LAYOUT} (other features and "
                "interactions), so the weights would mean nothing: the campaign starts a new "
                "model (the old versions stay on disk for the slotwise release that made them)",
            )
        self.verify(info)
        return load_workspace(self.model_path(info), explore, training=training)

    def _set_current(self, campaign: str, version: int) -> None:
        write_atomically(self._folder(campaign) / CURRENT, f"{version}\n".encode())

    def _prune(self, campaign: str, current: int) -> None:
        numbers = sorted(self._numbers(campaign))
        folder = self._folder(campaign)
        for version in numbers[: max(len(numbers) - self.keep, 0)]:
            if version == current:
                continue
            (folder / f"v{version:06d}.vw").unlink(missing_ok=True)
            (folder / f"v{version:06d}.json").unlink(missing_ok=True)
