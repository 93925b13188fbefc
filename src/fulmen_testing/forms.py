"""The fields a browser would post from a page's workflow form, for the dashboard's HTTP
tests (the editor's, the audit trail's)."""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["FormReader", "form_of"]


class FormReader(HTMLParser):
    """The fields a browser would post from a page's ``#workflow-form``: inputs (checked
    boxes only), each select's chosen option, textareas; no buttons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._first_option: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name and a.get("type") != "submit":
            if a.get("type") != "checkbox" or "checked" in a:
                self.fields[name] = a.get("value", "")
        elif tag == "select":
            self._select, self._first_option = name, None
        elif tag == "option" and self._select:
            if self._first_option is None:
                self._first_option = a.get("value", "")
                self.fields.setdefault(self._select, self._first_option)
            if "selected" in a:
                self.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea, self._text = name, []

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields[self._textarea] = "".join(self._text).removeprefix("\n")
            self._textarea = None


def form_of(html: str) -> dict[str, str]:
    reader = FormReader()
    start = html.index('<form method="post" id="workflow-form"')
    reader.feed(html[start : html.index("</form>", start)])
    return reader.fields
