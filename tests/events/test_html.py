"""The safe HTML subset of entry bodies (CONTRACT.md "Details: HTML subset", "Edges")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.html import ALLOWED_TAGS, SANITIZER_WOULD_REMOVE, refused_html

REFUSED = [
    # Tags outside the subset, opening or closing, known or not.
    ("<script>alert(1)</script>", "tag <script>"),
    ("<SCRIPT SRC=https://evil.example/x.js></SCRIPT>", "tag <script>"),
    ('<iframe src="https://evil.example"></iframe>', "tag <iframe>"),
    ("<style>p { display: none }</style>", "tag <style>"),
    ("<p>a</p><img src=x onerror=alert(1)>", "tag <img>"),
    ("<p>a</p><img src=x onerror=alert(1)>", "attribute onerror on <img>"),
    ("<div>Aleppo</div>", "tag <div>"),
    ("<p><span>Aleppo</span></p>", "tag <span>"),
    ("<svg onload=alert(1)></svg>", "tag <svg>"),
    ("<math><mi>x</mi></math>", "tag <math>"),
    ("<blink>Breaking</blink>", "tag <blink>"),
    ("<h1>Headline</h1>", "tag <h1>"),
    ("<table><tr><td>1</td></tr></table>", "tag <table>"),
    ("<p>text</p></div>", "tag <div>"),
    ("<bloc\u212aquote>x</bloc\u212aquote>", "tag <bloc\\u212aquote>"),
    # Attributes: none but href and title on <a>.
    ('<p onclick="alert(1)">Shelling</p>', "attribute onclick on <p>"),
    ('<em style="color:red">now</em>', "attribute style on <em>"),
    ('<p class="lead">Shelling</p>', "attribute class on <p>"),
    ('<b id="top">Shelling</b>', "attribute id on <b>"),
    ('<ul><li data-x="1">one</li></ul>', "attribute data-x on <li>"),
    ('<p href="https://example.org">x</p>', "attribute href on <p>"),
    ('<a href="https://example.org" target="_blank">x</a>', "attribute target on <a>"),
    ('<a href="https://example.org" rel="opener">x</a>', "attribute rel on <a>"),
    ("<p/onmouseover=alert(1)>x</p>", "attribute onmouseover on <p>"),
    ('<a title="one" title="two">x</a>', "duplicate attribute title on <a>"),
    ('<a href="https://example.org" href="javascript:x">x</a>', "duplicate attribute href on <a>"),
    ('<p>x</p onclick="alert(1)">', "attribute onclick on </p>"),
    ('<a title="<img src=x onerror=alert(1)>">x</a>', "markup in attribute title on <a>"),
    # URLs: https with a host, or mailto; read as a browser reads them.
    ('<a href="javascript:alert(1)">x</a>', "url javascript:alert(1) in <a href>"),
    ('<a href="JaVaScRiPt:alert(1)">x</a>', "url JaVaScRiPt:alert(1) in <a href>"),
    ('<a href=" javascript:alert(1)">x</a>', "url  javascript:alert(1) in <a href>"),
    ('<a href="jav&#x09;ascript:alert(1)">x</a>', "url jav\\tascript:alert(1) in <a href>"),
    ('<a href="jav\nascript:alert(1)">x</a>', "url jav\\nascript:alert(1) in <a href>"),
    ('<a href="&#106;avascript:alert(1)">x</a>', "url javascript:alert(1) in <a href>"),
    ('<a href="javascript&colon;alert(1)">x</a>', "url javascript:alert(1) in <a href>"),
    ('<a href="http://example.org">x</a>', "url http://example.org in <a href>"),
    ('<a href="data:text/html,<b>x</b>">x</a>', "markup in attribute href on <a>"),
    ('<a href="data:text/html;base64,PGI+">x</a>', "url data:text/html;base64,PGI+ in <a href>"),
    ('<a href="//evil.example/">x</a>', "url //evil.example/ in <a href>"),
    ('<a href="/live/syria-daily">x</a>', "url /live/syria-daily in <a href>"),
    ('<a href="#update-1850">x</a>', "url #update-1850 in <a href>"),
    ('<a href="">x</a>', "empty url in <a href>"),
    ('<a href="https://">x</a>', "url https:// in <a href>"),
    (
        '<a href="https://trusted.example@evil.example">x</a>',
        "url https://trusted.example@evil.example in <a href>",
    ),
    # Comments and other markup declarations.
    ("<p>a</p><!-- editor's note -->", "comment"),
    ("<p>a</p><!--><script>x</script>-->", "comment"),
    ("<!DOCTYPE html><p>a</p>", "doctype"),
    ("<![CDATA[<script>x</script>]]>", "CDATA section"),
    ("<?php echo 1; ?>", "processing instruction"),
    ("a </3 b> c", "comment"),
    ("<p>Breaking <b", "unterminated tag"),
    # Control characters, raw or as references.
    ("<p>a\x00b</p>", "control character U+0000"),
    ("<p>a&#0;b</p>", "control character U+0000"),
    ("<p>a&#x1;b</p>", "control character U+0001"),
    ("<p>bell\x07</p>", "control character U+0007"),
    ("<p>a\x0bb</p>", "control character U+000B"),
    ("<p>a\x7fb</p>", "control character U+007F"),
    # What html.parser accepts but html5ever (nh3) would not keep.
    ('<a href="https://example.org:99999">x</a>', SANITIZER_WOULD_REMOVE),
    ('<a href="https://999.999.999.999">x</a>', SANITIZER_WOULD_REMOVE),
]

ACCEPTED = [
    "Plain text without any markup",
    "<p>Shelling reported near the citadel</p>",
    "<p>Tom &amp; Jerry, AT&T, &unknown; and a bare &</p>",
    "<p>5 &lt; 6, 7 > 3 and 1 < 2</p>",
    "<p>a&nbsp;b&#160;c &#x1F600; &#128512; &copy; &notit;</p>",
    "<p>“Curly”, 'single', \"double\" — and l’apostrophe</p>",
    "<p>😀 日本語 العربية עברית</p>",
    '<ul><li><a href="https://x.org" title="t">x</a></li></ul>',
    "<p>a<br>b<br/>c<br />d</br></p>",
    '<p>Write to <a href="mailto:desk@example.org">the desk</a></p>',
    "<ol><li><strong>s</strong> <em>e</em> <b>b</b> <i>i</i></li></ol>",
    "<blockquote><p>We are ready, he said.</p></blockquote>",
    "<h3>Heading</h3><h4>Subheading</h4>",
    '<P>Upper case</P><A HREF="HTTPS://EXAMPLE.ORG/A">link</A>',
    '<a href="https://example.org/?a=1&notify=2&copy=3&region=ny">raw ampersands</a>',
    '<a href="https://example.org/?a=1&amp;b=2">escaped ampersand</a>',
    "<a href='https://example.org/'>single quotes</a> <a href=https://example.org/>none</a>",
    '<a href="https://example.org" title="a > b, &quot;q&quot;">title</a>',
    '<a href="  https://example.org/  ">spaces a browser strips</a>',
    "<a>an anchor without href</a>",
    "<p>line one\r\n\tline two</p>",
    "<b><p>misnested</b> but allowed</p>",
    "<p>unclosed paragraph<li>and a stray item",
    "<p>x</p\n>",
]


@pytest.mark.parametrize(("body", "item"), REFUSED)
def test_a_body_outside_the_subset_is_refused_naming_what_is_refused(body: str, item: str) -> None:
    """Every refused tag, attribute, URL, comment and control character is named."""
    assert item in refused_html(body)


@pytest.mark.parametrize("body", ACCEPTED)
def test_a_body_inside_the_subset_is_accepted(body: str) -> None:
    """Allowed tags, https and mailto links and ordinary text give nothing to refuse."""
    assert refused_html(body) == ()


def test_each_refused_item_is_named_once_in_order_of_first_appearance() -> None:
    """A tag used twice is named once, and the names follow the body from top to bottom."""
    body = (
        '<p onclick="a()">x</p><script>1</script>\x01<div>y</div><script>2</script>'
        '<a href="javascript:b()">z</a><p onclick="c()">w</p>'
    )
    assert refused_html(body) == (
        "attribute onclick on <p>",
        "tag <script>",
        "control character U+0001",
        "tag <div>",
        "url javascript:b() in <a href>",
    )


def test_a_refused_tag_names_its_attributes_too() -> None:
    """All of a refused element is named, so one answer lists everything to fix."""
    assert refused_html('<img src="https://example.org/a.png" onerror="x()">') == (
        "tag <img>",
        "attribute src on <img>",
        "attribute onerror on <img>",
    )


def test_control_characters_in_names_are_shown_escaped() -> None:
    """A URL split by a newline is named with ``\\n``, so the message stays on one line."""
    assert refused_html('<a href="java\nscript:x">x</a>') == ("url java\\nscript:x in <a href>",)


def test_a_long_refused_url_is_shortened_in_its_name() -> None:
    """Names stay short: a long URL is cut with an ellipsis."""
    (name,) = refused_html(f'<a href="javascript:{"x" * 500}">x</a>')
    assert name.startswith("url javascript:xxx")
    assert name.endswith("… in <a href>")
    assert len(name) < 120


def test_an_enormous_character_reference_is_refused_without_an_error() -> None:
    """A decimal reference longer than int() reads is refused, not a crash (500)."""
    assert refused_html(f"<p>&#{'1' * 5000};</p>") == ("markup the parser cannot read",)


def test_the_sanitizer_gate_names_nothing_else_when_the_first_pass_names_something() -> None:
    """The generic item only ever stands alone: it means the two parsers disagree."""
    assert refused_html('<a href="https://example.org:99999" onclick="x">x</a>') == (
        "attribute onclick on <a>",
    )


# Hypothesis: bodies built from allowed tags and safe text only.

_REFUSED_CONTROLS = "".join(chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)) + "\x7f"
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=_REFUSED_CONTROLS),
    max_size=30,
)
_URLS = st.builds(
    lambda host, path: f"https://{host}/{path}",
    st.sampled_from(["example.org", "www.example.org", "news.example.co.uk"]),
    st.text(st.sampled_from("abc-_.~/?=&;%#+"), max_size=20),
) | st.builds(
    lambda user: f"mailto:{user}@example.org", st.from_regex(r"[a-z]{1,8}", fullmatch=True)
)


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _escape_value(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", " ")


@st.composite
def _links(draw: st.DrawFn, children: str) -> str:
    attributes = ""
    if draw(st.booleans()):
        attributes += f' href="{_escape_value(draw(_URLS))}"'
    if draw(st.booleans()):
        attributes += f' title="{_escape_value(draw(_TEXT))}"'
    return f"<a{attributes}>{children}</a>"


def _elements(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    content = st.lists(children, max_size=4).map("".join)
    plain = st.builds(
        lambda tag, inner: f"<{tag}>{inner}</{tag}>",
        st.sampled_from(sorted(ALLOWED_TAGS - {"a", "br"})),
        content,
    )
    return plain | content.flatmap(_links) | st.sampled_from(["<br>", "<br/>", "<br />"])


_BODIES = st.recursive(_TEXT.map(_escape_text), _elements, max_leaves=30)


@settings(max_examples=300)
@given(_BODIES)
def test_any_body_of_allowed_tags_and_safe_text_is_accepted(body: str) -> None:
    """Property: nothing built only from the subset is refused, however it nests."""
    assert refused_html(body) == ()


@settings(max_examples=300)
@given(st.text(), st.text())
def test_any_body_containing_a_script_tag_opening_is_refused(before: str, after: str) -> None:
    """Property: "<script" anywhere (text, attribute, comment, tag) gets the body refused."""
    assert refused_html(f"{before}<script{after}") != ()
