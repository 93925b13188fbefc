"""What jobs' packages resolve to: the documents of api/adaptors.py."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fulmen.coordinator.api.schemas.catalog import MAX_REQUIREMENTS, Requirement
from fulmen.coordinator.api.schemas.common import InputDoc

#: Jobs one request may ask about: a workflow's, many times over.
MAX_JOBS_ASKED = 200


class ResolvedAdaptor(BaseModel):
    #: As asked: ``common``, ``@openfn/language-http@^6``…
    adaptor: str
    resolved: str = Field(
        description="The exact version a JavaScript job naming the adaptor is saved with now "
        "(@openfn/language-common@3.3.4)"
    )


class ResolvedDoc(BaseModel):
    items: list[ResolvedAdaptor]


class PackagesJobIn(InputDoc):
    """A job as a workflow document has it, as far as its packages go."""

    name: str = Field(min_length=1, description="Names the job in an error")
    adaptor: str = "common"
    language: Literal["python", "javascript"] | None = None
    requirements: list[Requirement] = Field(default=[], max_length=MAX_REQUIREMENTS)


class PackagesIn(InputDoc):
    """The jobs of one workflow: their Python packages are resolved together, as a save
    resolves them (they share one environment)."""

    jobs: list[PackagesJobIn] = Field(min_length=1, max_length=MAX_JOBS_ASKED)
    workflow_id: str | None = Field(
        default=None,
        description="The saved workflow these jobs will replace, if any: the exact pins it "
        "has were checked when it was saved and are not asked about again",
    )


class PackagesJob(BaseModel):
    name: str
    adaptor: str = Field(
        description="As a save would keep it now: a Python package at its exact version "
        "(pandas@2.2.3); any other adaptor as sent"
    )
    requirements: list[str] = Field(
        description="As a save would keep them now: exact (httpx==0.28.1)"
    )


class PackagesDoc(BaseModel):
    #: In the order sent.
    jobs: list[PackagesJob]
