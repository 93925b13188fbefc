"""What JavaScript jobs' adaptors resolve to: the document of api/adaptors.py."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ResolvedAdaptor(BaseModel):
    #: As asked: ``common``, ``@openfn/language-http@^6``…
    adaptor: str
    resolved: str = Field(
        description="The exact version a JavaScript job naming the adaptor is saved with now "
        "(@openfn/language-common@3.3.4)"
    )


class ResolvedDoc(BaseModel):
    items: list[ResolvedAdaptor]
