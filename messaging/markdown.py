"""Render message bodies: a Markdown subset, @mentions and #channels, then an allow-list sanitiser.

The subset: emphasis, strikethrough, code spans and blocks (a fence's
language kept as `class="language-…"`, no highlighting), links, autolinks and
bare http(s) URLs, bulleted and numbered lists, block quotes, and headings,
which render as bold lines (a chat message has no document outline).

Raw HTML in a body is never passed through: markdown-it runs with HTML off
and only the rules listed below, and nh3 removes anything outside the
allow-list whatever the renderer produced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from accounts.models import USERNAME_PATTERN

MENTION_RE = re.compile(rf"(?<![\w@.])@({USERNAME_PATTERN})")

ALLOWED_TAGS = {"p", "br", "em", "strong", "s", "code", "pre", "a", "span", "ul", "ol", "li", "blockquote"}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class", "data-user-id"},
    "code": {"class"},
    "ol": {"start"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}
# The only class a code block keeps: its fence's language.
CODE_CLASS_RE = re.compile(r"language-[A-Za-z0-9_+#.-]{1,32}")
# The only relative link: a #channel's page on this server.
CHANNEL_HREF_RE = re.compile(r"/rooms/[0-9]{1,19}/")

# A bare URL in text, and a #channel name (slugs: letters, digits, - and _).
BARE_URL_RE = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
CHANNEL_RE = re.compile(r"(?<![\w&#/])#([a-z0-9][a-z0-9_-]{0,79})", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?'\""


def mentioned_channels(body: str) -> set[str]:
    """Return the lower-cased names that look like #channel links in a body."""
    return {match.group(1).lower() for match in CHANNEL_RE.finditer(body)}


def mentioned_usernames(body: str) -> set[str]:
    """Return the lower-cased names that look like @mentions in a body."""
    return {match.group(1).lower() for match in MENTION_RE.finditer(body)}


_USERNAME_RE = re.compile(USERNAME_PATTERN)


def _mention(state: StateInline, silent: bool) -> bool:
    """Turn @name into a mention token when name is a known user (from env["known_users"])."""
    if state.src[state.pos] != "@":
        return False
    if state.pos > 0 and (state.src[state.pos - 1].isalnum() or state.src[state.pos - 1] in "_@."):
        return False
    match = _USERNAME_RE.match(state.src, state.pos + 1)
    known: dict[str, int] = state.env.get("known_users", {})
    if match is None or match.group(0).lower() not in known:
        return False
    if not silent:
        token = state.push("mention", "", 0)
        token.content = match.group(0)
        token.meta = {"user_id": known[match.group(0).lower()]}
    state.pos = match.end()
    return True


def _render_mention(self, tokens, idx, options, env) -> str:  # type: ignore[no-untyped-def]
    token = tokens[idx]
    name = token.content
    return f'<span class="mention" data-user-id="{int(token.meta["user_id"])}">@{name}</span>'


def _url_end(text: str, start: int, end: int) -> int:
    """Where a bare URL found in text really ends: not on trailing punctuation or an unmatched bracket."""
    while end > start:
        last = text[end - 1]
        unmatched_bracket = last == ")" and text.count("(", start, end) < text.count(")", start, end)
        if last not in TRAILING_PUNCTUATION and not unmatched_bracket:
            break
        end -= 1
    return end


def _link_tokens(href: str, text: str, *, level: int) -> list[Token]:
    opening = Token("link_open", "a", 1, attrs={"href": href}, level=level)
    content = Token("text", "", 0, content=text, level=level + 1)
    closing = Token("link_close", "a", -1, level=level)
    return [opening, content, closing]


def _split_text(token: Token, channels: dict[str, int]) -> list[Token] | None:
    """Split a text token around its bare URLs and known #channels; None when it has neither."""
    text = token.content
    found: list[tuple[int, int, str]] = []
    for match in BARE_URL_RE.finditer(text):
        end = _url_end(text, match.start(), match.end())
        if end > match.start() + len("https://"):
            found.append((match.start(), end, text[match.start() : end]))
    for match in CHANNEL_RE.finditer(text):
        room_id = channels.get(match.group(1).lower())
        inside_url = any(start <= match.start() < end for start, end, _ in found)
        if room_id is not None and not inside_url:
            found.append((match.start(), match.end(), f"/rooms/{int(room_id)}/"))
    if not found:
        return None
    pieces: list[Token] = []
    position = 0
    for start, end, href in sorted(found):
        if start < position:
            continue
        if start > position:
            pieces.append(Token("text", "", 0, content=text[position:start], level=token.level))
        pieces.extend(_link_tokens(href, text[start:end], level=token.level))
        position = end
    if position < len(text):
        pieces.append(Token("text", "", 0, content=text[position:], level=token.level))
    return pieces


def _bare_links(state: StateCore) -> None:
    """Link bare URLs and known #channels in text, outside links and code (a core rule after inline)."""
    channels: dict[str, int] = state.env.get("known_channels", {})
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        link_depth = 0
        for child in block.children:
            if child.type == "link_open":
                link_depth += 1
            elif child.type == "link_close":
                link_depth -= 1
            split = _split_text(child, channels) if child.type == "text" and link_depth == 0 else None
            children.extend(split if split is not None else [child])
        block.children = children


def _render_heading_open(self, tokens, idx, options, env) -> str:  # type: ignore[no-untyped-def]
    return "<p><strong>"


def _render_heading_close(self, tokens, idx, options, env) -> str:  # type: ignore[no-untyped-def]
    return "</strong></p>\n"


def _build_renderer() -> MarkdownIt:
    md = MarkdownIt("zero", {"html": False, "linkify": False, "breaks": True}).enable(
        [
            "emphasis",
            "backticks",
            "fence",
            "code",
            "link",
            "autolink",
            "newline",
            "escape",
            "strikethrough",
            "list",
            "blockquote",
            "heading",
        ]
    )
    md.inline.ruler.before("emphasis", "mention", _mention)
    md.add_render_rule("mention", _render_mention)
    md.core.ruler.after("inline", "bare_links", _bare_links)
    md.add_render_rule("heading_open", _render_heading_open)
    md.add_render_rule("heading_close", _render_heading_close)
    return md


_renderer = _build_renderer()


def render(
    body: str, *, known_users: dict[str, int] | None = None, known_channels: dict[str, int] | None = None
) -> str:
    """Return sanitised HTML for a body.

    `known_users` maps lower-cased usernames to ids (@mentions), and
    `known_channels` lower-cased channel names to room ids (#channel links).
    """
    html = _renderer.render(body, {"known_users": known_users or {}, "known_channels": known_channels or {}})
    return sanitize(html)


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    if element == "code" and attribute == "class":
        return value if CODE_CLASS_RE.fullmatch(value) else None
    if element == "a" and attribute == "href" and not value.lower().startswith(("http:", "https:", "mailto:")):
        # Relative links are only ever a #channel's page; anything else relative is dropped.
        return value if CHANNEL_HREF_RE.fullmatch(value) else None
    if element == "ol" and attribute == "start":
        return value if value.isascii() and value.isdigit() and len(value) <= 9 else None
    return value


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        attribute_filter=_attribute_filter,
    ).strip()


def mentioned_ids(known_users: dict[str, int], body: str) -> Iterable[int]:
    """Return the ids of the users the rendered body mentions; a name inside code is not a mention."""
    tokens = _renderer.parse(body, {"known_users": known_users})
    return sorted(
        {child.meta["user_id"] for token in tokens for child in token.children or () if child.type == "mention"}
    )
