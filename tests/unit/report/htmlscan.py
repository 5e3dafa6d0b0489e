"""Read a report the way a browser's parser splits it: markup, text, scripts, styles, metric cells (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
URL_ATTRS = {"src", "href", "action", "formaction", "data", "poster", "srcset", "background", "xlink:href", "ping"}


@dataclass
class Scan:
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    markup: list[str] = field(default_factory=list)  # every start tag as written (attributes included)
    text: list[str] = field(default_factory=list)  # visible text nodes
    scripts: list[tuple[dict[str, str], str]] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    metrics: list[tuple[str, str, str]] = field(default_factory=list)  # (scope, metric, text)
    comments: list[str] = field(default_factory=list)

    def metric(self, scope: str, name: str) -> list[str]:
        return [t for s, m, t in self.metrics if s == scope and m == name]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scan = Scan()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.metric: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.scan.tags.append((tag, a))
        self.scan.markup.append(self.get_starttag_text() or "")
        if "data-metric" in a:
            self.metric = []
            self._metric_name = a["data-metric"]
            self._metric_scope = next((s.get("data-eval") or s.get("data-compare") for _, s in reversed(self.stack)
                                       if s.get("data-eval") or s.get("data-compare")), "")
        if tag not in VOID:
            self.stack.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            t, a = self.stack.pop()
            if "data-metric" in a and self.metric is not None:
                self.scan.metrics.append((self._metric_scope, self._metric_name, "".join(self.metric).strip()))
                self.metric = None
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        top = self.stack[-1] if self.stack else ("", {})
        if top[0] == "script":
            self.scan.scripts.append((top[1], data))
        elif top[0] == "style":
            self.scan.styles.append(data)
        else:
            self.scan.text.append(data)
            if self.metric is not None:
                self.metric.append(data)

    def handle_comment(self, data: str) -> None:
        self.scan.comments.append(data)


def scan_html(html: str) -> Scan:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.scan
