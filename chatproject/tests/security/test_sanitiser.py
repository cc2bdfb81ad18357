"""No message body, however crafted, renders to HTML that can run script (issue 5, item 4).

Hypothesis builds bodies from the pieces attacks are made of: tags, event
handler attributes, javascript:/data: URLs in every spelling, entities,
Markdown links and autolinks, and stray quotes and brackets. The rendered
HTML is then read by a real HTML parser, as a browser would.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging import markdown

# Attack material: each piece is harmless alone; together they probe the renderer and the sanitiser.
PIECES = [
    "<script>alert(1)</script>",
    "<script",
    "</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<style>*{}</style>",
    "<object data=x>",
    "<math><mi xlink:href=javascript:alert(1)>",
    "<!--",
    "-->",
    "<![CDATA[",
    " onclick=alert(1) ",
    "onmouseover=",
    '"',
    "'",
    "`",
    "<",
    ">",
    "/",
    "=",
    "&",
    "&#106;",
    "&#x6A;",
    "&colon;",
    "&Tab;",
    "\t",
    "\n",
    "\x0b",
    "\u200b",
    "javascript:",
    "JaVaScRiPt:",
    "java\tscript:",
    "java\nscript:",
    "jav&#x09;ascript:",
    "vbscript:",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:",
    "alert(1)",
    "[x](",
    "](",
    ")",
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](  javascript:alert(1) )",
    "[x](&#106;avascript:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    '[x](https://example.com "title" onmouseover="alert(1)")',
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "<data:text/html,x>",
    '<https://example.com/"onmouseover=alert(1)>',
    "![img](javascript:alert(1))",
    "`code`",
    "```\n",
    "```html\n<script>alert(1)</script>\n```",
    "*",
    "**",
    "_",
    "~~",
    "@alice",
    '@bob"><script>',
    "\\",
    'https://example.com/?a=<b>&c="d"',
    "mailto:x@example.com",
    # Lists, quotes, headings, bare URLs, #channels and code languages.
    "\n- ",
    "\n1. ",
    "\n99999999999. ",
    "\n> ",
    "\n# ",
    "https://",
    "http://example.com/",
    "#general",
    "#",
    '```js" onclick="',
    '<a href="/rooms/1/">',
    '<a href="/admin/">',
    "//evil.example/",
]

BODIES = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(max_size=8)),
    min_size=1,
    max_size=25,
).map("".join)

DANGEROUS_TAGS = {"script", "style", "iframe", "object", "embed", "svg", "math", "img", "form", "base", "meta", "link"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background"}
BAD_SCHEME = re.compile(r"^(javascript|data|vbscript):", re.IGNORECASE)
SAFE_HREF = re.compile(r"^(https?:|mailto:|/rooms/[0-9]+/$)", re.IGNORECASE)


class Findings(HTMLParser):
    """Collect everything in a document that could run script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DANGEROUS_TAGS:
            self.problems.append(f"<{tag}> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler attribute {name}")
            if name == "style":
                self.problems.append("style attribute")
            if name in URL_ATTRIBUTES and value is not None:
                # Browsers drop whitespace and control characters inside a scheme.
                squeezed = re.sub(r"[\x00-\x20\x7f-\x9f\u200b]+", "", html.unescape(value))
                if BAD_SCHEME.match(squeezed):
                    self.problems.append(f"{name}={value!r}")
                # A link goes out over http(s) or mailto, or to a #channel's page here; nothing else.
                if name == "href" and not SAFE_HREF.match(html.unescape(value)):
                    self.problems.append(f"href={value!r}")

    handle_startendtag = handle_starttag

    def handle_comment(self, data: str) -> None:
        self.problems.append("comment")

    def handle_pi(self, data: str) -> None:
        self.problems.append("processing instruction")


def problems_in(rendered: str) -> list[str]:
    parser = Findings()
    parser.feed(rendered)
    parser.close()
    return parser.problems


KNOWN = {"alice": 1, "bob": 2}
CHANNELS = {"general": 3}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODIES)
def test_no_body_renders_script_handlers_or_dangerous_urls(body: str) -> None:
    rendered = markdown.render(body, known_users=KNOWN, known_channels=CHANNELS)
    assert problems_in(rendered) == [], (body, rendered)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_renders_nothing_dangerous(body: str) -> None:
    assert problems_in(markdown.render(body, known_users=KNOWN, known_channels=CHANNELS)) == []


@settings(max_examples=200, deadline=None)
@given(BODIES)
def test_the_sanitiser_alone_removes_what_the_renderer_might_let_through(raw_html: str) -> None:
    # Belt and braces: even raw HTML handed straight to the sanitiser comes out inert.
    assert problems_in(markdown.sanitize(raw_html)) == [], raw_html


def test_the_checker_itself_spots_each_kind_of_danger() -> None:
    # A property test is only as good as its oracle.
    assert problems_in("<script>x</script>")
    assert problems_in('<a href="java&#x09;script:alert(1)">x</a>')
    assert problems_in('<a href=" JAVASCRIPT:x">x</a>')
    assert problems_in('<a href="data:text/html,x">x</a>')
    assert problems_in('<span onclick="x">x</span>')
    assert problems_in('<img src="x">')
    assert problems_in('<a href="//evil.example/">x</a>')
    assert not problems_in('<a href="https://example.com">x</a> <code>&lt;script&gt;</code>')


def test_links_keep_safe_schemes_and_lose_dangerous_ones() -> None:
    assert 'href="https://example.com"' in markdown.render("[x](https://example.com)")
    assert "href" not in markdown.render("[x](javascript:alert(1))")
    assert "href" not in markdown.render("[x](data:text/html,hi)")
    assert "<script" not in markdown.render("<script>alert(1)</script>")
    assert "&lt;script&gt;" in markdown.render("<script>alert(1)</script>")
