"""Render message bodies: a small Markdown subset, @mentions, then an allow-list sanitiser.

Raw HTML in a body is never passed through: markdown-it runs with HTML off
and only the rules listed below, and nh3 removes anything outside the
allow-list whatever the renderer produced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline

from accounts.models import USERNAME_PATTERN

MENTION_RE = re.compile(rf"(?<![\w@.])@({USERNAME_PATTERN})")

ALLOWED_TAGS = {"p", "br", "em", "strong", "s", "code", "pre", "a", "span"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "span": {"class", "data-user-id"}, "code": {"class"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


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


def _build_renderer() -> MarkdownIt:
    md = MarkdownIt("zero", {"html": False, "linkify": False, "breaks": True}).enable(
        ["emphasis", "backticks", "fence", "code", "link", "autolink", "newline", "escape", "strikethrough"]
    )
    md.inline.ruler.before("emphasis", "mention", _mention)
    md.add_render_rule("mention", _render_mention)
    return md


_renderer = _build_renderer()


def render(body: str, *, known_users: dict[str, int] | None = None) -> str:
    """Return sanitised HTML for a body; `known_users` maps lower-cased usernames to ids."""
    html = _renderer.render(body, {"known_users": known_users or {}})
    return sanitize(html)


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


def mentioned_ids(known_users: dict[str, int], body: str) -> Iterable[int]:
    """Return the ids of the users the rendered body mentions; a name inside code is not a mention."""
    tokens = _renderer.parse(body, {"known_users": known_users})
    return sorted(
        {child.meta["user_id"] for token in tokens for child in token.children or () if child.type == "mention"}
    )
