"""What the project layer knows of a cluster kind: the kinds are given to it, never imported."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .model import Cluster, Job, Model

if TYPE_CHECKING:
    from ..loader import Loc
    from .checker import Checker, Loaded, Points


@dataclass(frozen=True)
class JobScope:
    """One job under check, with what the common checks found out about it."""

    loc: Loc
    name: str
    job: Job
    cluster: Cluster
    known: set[str]  # ${NAME} references the job may use
    params: set[str]  # {{ name }} placeholders its command and env may use
    points: Points


class Kind(ABC):
    """A cluster kind as validation sees it: its models, its checks, its words.

    Its words are class attributes; its models and checks are imported by a kind only when
    asked for, so that a kind a project does not use costs a build no import.
    """

    name = ""  # the value of a cluster's ``kind``
    title = ""  # how messages name it (its proper name)
    # Environment variables the platform sets in a job: a job may refer to PREFIX_* freely.
    platform_prefixes: tuple[str, ...] = ()
    # Common job keys this kind has no use for (a job on it may not set them).
    refused_common: tuple[str, ...] = ()
    # Sweep keys only this kind uses, with what they are for ("is for ... arrays").
    sweep_options: dict[str, str] = {}
    # Why a sweep key of another kind means nothing here ("... launches one job per point").
    sweep_refusal = ""
    # Cluster keys that never reach a shell line (their text is not checked as such).
    prose: frozenset[str] = frozenset()
    # Job option keys whose text the kind checks itself (shell code, config values).
    own_text: frozenset[str] = frozenset()
    # Kinds of text below a job's options, as in model.TEXT_KINDS (paths under jobs.NAME).
    text_kinds: tuple[tuple[tuple[str, ...], str], ...] = ()

    @property
    def cluster_model(self) -> type[Cluster]:
        """The model of a cluster of this kind."""
        return Cluster

    @property
    def options_model(self) -> type[Model]:
        """The model of the job keys of this kind beyond the common ones."""
        return Model

    @abstractmethod
    def check_cluster(self, ck: Checker, loc: Loc, cluster: Any, known: set[str]) -> None:
        """Report what is wrong with a cluster of this kind."""

    @abstractmethod
    def check_job(self, ck: Checker, loaded: Loaded, scope: JobScope) -> None:
        """Report what is wrong with a job on a cluster of this kind."""

    def job_params(self, name: str, job: Job, cluster: Any) -> dict[str, list[str]]:
        """Placeholders this kind adds to a job's command, with sample values to check
        where they stand."""
        return {}

    def job_code(self, job: Job) -> list[tuple[tuple[str, ...], str]]:
        """Shell code of this kind's job options besides the command, by place under the
        job (its placeholders are checked like the command's)."""
        return []


class Section(ABC):
    """A top-level section of project.yaml that a backend reads itself: the project layer
    knows its key and the kinds of text below it, and asks it for the rest."""

    section = ""  # its key in project.yaml
    # Kinds of text below the section, as in model.TEXT_KINDS (paths under the section).
    section_text_kinds: tuple[tuple[tuple[str, ...], str], ...] = ()

    @property
    def entry_model(self) -> type[Model] | None:
        """The model of each entry, when the section maps names to entries (for tools that
        walk the schema of project.yaml)."""
        return None

    @abstractmethod
    def check_section(self, ck: Checker, loaded: Loaded, raw: Any) -> Any:
        """Validate the section's raw value against the rest of the project; report what is
        wrong; return what is valid of it (kept in ``loaded.sections``)."""
