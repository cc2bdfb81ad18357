"""Message rendering: the Markdown subset, @mentions, and the sanitiser that guards every reader's browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from messaging import markdown
from rooms.services import room_join

KNOWN = {"bob": 7, "carol.w": 8}
ALLOWED_TAGS = {"p", "br", "em", "strong", "s", "code", "pre", "a", "span", "ul", "ol", "li", "blockquote"}
CHANNELS = {"general": 5}


class Tags(HTMLParser):
    """Collect every tag and attribute a browser would see in a fragment."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    @property
    def urls(self) -> list[str]:
        return [value or "" for _, attrs in self.tags for name, value in attrs.items() if name in {"href", "src"}]


def assert_harmless(html: str) -> None:
    parsed = Tags(html)
    assert "<script" not in html.lower()
    assert {tag for tag, _ in parsed.tags} <= ALLOWED_TAGS
    for _, attrs in parsed.tags:
        assert not [name for name in attrs if name.startswith("on")], attrs
        assert not [name for name in attrs if name in {"style", "src", "srcdoc", "formaction"}], attrs
    for url in parsed.urls:
        # Browsers ignore whitespace and control characters inside a scheme.
        squeezed = re.sub(r"[\x00-\x20]", "", url).lower()
        assert not squeezed.startswith(("javascript:", "data:", "vbscript:")), url


HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="#" onclick="alert(1)">click</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](<javascript:alert(1)>)",
    "[x](java\tscript:alert(1))",
    "[x](jav&#x61;script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](DATA:image/svg+xml,<svg onload=alert(1)>)",
    "[x](vbscript:msgbox(1))",
    "<javascript:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    '[x](https://example.com "title\\" onmouseover=\\"alert(1)")',
    '[x](https://example.com" onmouseover="alert(1))',
    "![x](https://example.com/x.png)",
    "![x](javascript:alert(1))",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "<<script>script>alert(1)<</script>/script>",
    "**<script>alert(1)</script>**",
    "*[**x**](javascript:alert(1))*",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    "    <img src=x onerror=alert(1)>",
    "@bob<script>alert(1)</script>",
    "[@bob](javascript:alert(1))",
    "<style>body{display:none}</style>",
    "<!-- <script>alert(1)</script> -->",
    # The constructs added later: lists, quotes, headings, bare URLs, #channels, code languages.
    "- <script>alert(1)</script>\n- [x](javascript:alert(1))",
    '1. <img src=x onerror=alert(1)>\n2. "><svg onload=alert(1)>',
    "> <script>alert(1)</script>\n> > [x](data:text/html,hi)",
    "# <script>alert(1)</script>",
    "## [x](javascript:alert(1))",
    "https://example.com/<script>alert(1)</script>",
    'https://example.com/"onmouseover="alert(1)',
    "javascript:alert(1) https://x.example/javascript:alert(1)",
    '#general<script>alert(1)</script> #general" onclick="x',
    '```js" onclick="alert(1)\nx\n```',
    "```<script>\nx\n```",
    "99999999999999999999. overflow",
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_bodies_render_harmless_html(body):
    assert_harmless(markdown.render(body, known_users=KNOWN, known_channels=CHANNELS))


@pytest.mark.parametrize(
    "body",
    ["<b>bold</b>", '<div class="x">block</div>', "<span class=mention data-user-id=1>@root</span>", "<br>"],
)
def test_raw_html_in_a_body_is_shown_as_text_never_passed_through(body):
    html = markdown.render(body, known_users=KNOWN)

    assert Tags(html).tags == [("p", {})]
    assert "&lt;" in html


def test_the_sanitiser_strips_what_the_renderer_should_never_produce():
    html = markdown.sanitize(
        '<p onclick="x()">hi<script>alert(1)</script><a href="javascript:alert(1)">a</a><img src=x onerror=y></p>'
    )

    assert_harmless(html)
    assert "hi" in html


# --- The Markdown subset ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "html"),
    [
        ("*em* and _em_", "<p><em>em</em> and <em>em</em></p>"),
        ("**strong**", "<p><strong>strong</strong></p>"),
        ("~~gone~~", "<p><s>gone</s></p>"),
        ("use `rm -rf *` with care", "<p>use <code>rm -rf *</code> with care</p>"),
        ("`<b>`", "<p><code>&lt;b&gt;</code></p>"),
        ("line one\nline two", "<p>line one<br>\nline two</p>"),
        ("\\*not em\\*", "<p>*not em*</p>"),
        ("**bold *and em***", "<p><strong>bold <em>and em</em></strong></p>"),
    ],
)
def test_the_markdown_subset_renders(body, html):
    assert markdown.render(body) == html


def test_fenced_code_keeps_its_text_and_language():
    html = markdown.render("```python\nif a < b:\n    print('*not em*')\n```")

    assert html == "<pre><code class=\"language-python\">if a &lt; b:\n    print('*not em*')\n</code></pre>"


def test_links_open_safely_in_a_new_context():
    html = markdown.render("see [the docs](https://example.com/docs?a=1&b=2)")

    [attrs] = [attrs for tag, attrs in Tags(html).tags if tag == "a"]
    assert attrs["href"] == "https://example.com/docs?a=1&b=2"
    assert set(attrs["rel"].split()) >= {"noopener", "noreferrer", "nofollow"}


@pytest.mark.parametrize("body", ["<https://example.com>", "<mailto:someone@example.com>"])
def test_autolinks_render_as_safe_links(body):
    [attrs] = [attrs for tag, attrs in Tags(markdown.render(body)).tags if tag == "a"]

    assert attrs["href"] == body.strip("<>")
    assert "noopener" in attrs["rel"]


def test_nested_markdown_renders_each_level():
    html = markdown.render("**bold *em `code` [link](https://a.example)* end**")

    assert html == (
        '<p><strong>bold <em>em <code>code</code> <a href="https://a.example" rel="noopener noreferrer nofollow">'
        "link</a></em> end</strong></p>"
    )


def test_images_are_not_part_of_the_subset():
    html = markdown.render("![alt](https://example.com/x.png)")

    assert {tag for tag, _ in Tags(html).tags} <= {"p", "a", "br"}


@pytest.mark.parametrize(
    ("body", "html"),
    [
        ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
        ("* one\n* two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
        ("1. one\n2. two", "<ol>\n<li>one</li>\n<li>two</li>\n</ol>"),
        ("3. three\n4. four", '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>'),
        ("> quoted\n> more", "<blockquote>\n<p>quoted<br>\nmore</p>\n</blockquote>"),
        ("# Title\ntext", "<p><strong>Title</strong></p>\n<p>text</p>"),
        ("### Small *title*", "<p><strong>Small <em>title</em></strong></p>"),
    ],
)
def test_lists_quotes_and_headings_render_headings_as_bold_lines(body, html):
    assert markdown.render(body) == html


@pytest.mark.parametrize(
    ("body", "href"),
    [
        ("see https://example.com/a?b=1.", "https://example.com/a?b=1"),
        ("(https://example.com/x)", "https://example.com/x"),
        ("https://en.example.org/wiki/Foo_(bar)!", "https://en.example.org/wiki/Foo_(bar)"),
        ("HTTP://EXAMPLE.COM/", "HTTP://EXAMPLE.COM/"),
    ],
)
def test_bare_urls_become_links_without_trailing_punctuation(body, href):
    html = markdown.render(body)
    (link,) = [attrs for tag, attrs in Tags(html).tags if tag == "a"]

    assert link["href"] == href
    assert f">{href}</a>" in html
    assert link["rel"] == "noopener noreferrer nofollow"


@pytest.mark.parametrize("body", ["`https://example.com`", "```\nhttps://example.com\n```", "ftp://example.com"])
def test_urls_in_code_and_other_schemes_stay_text(body):
    assert "<a " not in markdown.render(body)


def test_a_url_inside_a_link_is_not_linked_twice():
    html = markdown.render("[https://shown.example](https://target.example)")

    assert html.count("<a ") == 1
    assert 'href="https://target.example"' in html


def test_known_channels_link_to_their_page_and_others_stay_text():
    html = markdown.render("see #General, #nowhere, a#general and `#general`", known_channels=CHANNELS)

    assert html.count('href="/rooms/5/"') == 1
    assert ">#General</a>" in html
    assert "#nowhere" in html
    assert "<code>#general</code>" in html


def test_the_sanitiser_keeps_only_a_channel_page_as_a_relative_link():
    html = markdown.sanitize('<a href="/rooms/5/">ok</a><a href="/admin/">no</a><a href="//evil.example/">no</a>')

    assert [attrs.get("href") for tag, attrs in Tags(html).tags if tag == "a"] == ["/rooms/5/", None, None]


def test_a_code_block_keeps_only_a_plain_language_class():
    assert 'class="language-c++"' in markdown.render("```c++\nx\n```")
    assert "class=" not in markdown.render('```js" onclick="x\nx\n```')
    assert "class=" not in markdown.sanitize('<code class="mention">x</code>')


def test_a_posted_message_links_public_channels_only(alice, lobby, secret, say):
    message = say(lobby, alice, f"see #{lobby.slug} and #{secret.slug}")

    assert f'href="/rooms/{lobby.pk}/"' in message.html
    assert f"/rooms/{secret.pk}/" not in message.html


# --- Mentions -----------------------------------------------------------------------------------


def test_mentions_of_known_users_render_as_mention_spans():
    html = markdown.render("thanks @bob and @carol.w.", known_users=KNOWN)

    assert html == (
        '<p>thanks <span class="mention" data-user-id="7">@bob</span> and '
        '<span class="mention" data-user-id="8">@carol.w</span>.</p>'
    )


def test_mentions_match_usernames_regardless_of_case():
    assert markdown.render("@BOB", known_users=KNOWN) == '<p><span class="mention" data-user-id="7">@BOB</span></p>'


@pytest.mark.parametrize("body", ["hi @nobody", "mail bob@example.com", "@@bob", "a.@bob"])
def test_unknown_names_and_lookalikes_stay_plain_text(body):
    html = markdown.render(body, known_users=KNOWN)

    assert "mention" not in html
    assert "<span" not in html


@pytest.mark.parametrize("body", ["`@bob`", "```\n@bob\n```", "    @bob in indented code"])
def test_mentions_inside_code_are_not_mentions(body):
    html = markdown.render(body, known_users=KNOWN)

    assert "mention" not in html
    assert "@bob" in html
    assert list(markdown.mentioned_ids(KNOWN, body)) == []


def test_mentioned_ids_lists_each_known_user_once():
    body = "@bob @BOB @carol.w @nobody `@bob`"

    assert list(markdown.mentioned_ids(KNOWN, body)) == [7, 8]


def test_mentions_inside_emphasis_and_links_still_render():
    html = markdown.render("*@bob* [@carol.w](https://example.com)", known_users=KNOWN)

    assert 'data-user-id="7"' in html
    assert 'data-user-id="8"' in html
    assert_harmless(html)


# --- Through the service, with real users -------------------------------------------------------


@pytest.mark.django_db
def test_a_posted_message_mentions_existing_users_by_id(bob, lobby, say, make_user):
    room_join(user=make_user("dot.name"), room=lobby)
    dot = make_user("dot.name2")
    room_join(user=dot, room=lobby)

    message = say(lobby, bob, "ping @alice, @carol and @dot.name2 but not @ghost")

    assert f'<span class="mention" data-user-id="{lobby.created_by_id}">@alice</span>' in message.html
    assert f'data-user-id="{dot.pk}">@dot.name2</span>' in message.html
    assert "@ghost" in message.html
    assert message.html.count('class="mention"') == 3


@pytest.mark.django_db
def test_a_posted_message_never_mentions_an_inactive_user(bob, lobby, say, make_user):
    gone = make_user("gone")
    room_join(user=gone, room=lobby)
    gone.is_active = False
    gone.save(update_fields=["is_active"])

    message = say(lobby, bob, "where is @gone?")

    assert "mention" not in message.html
    assert not message.mentions.exists()
