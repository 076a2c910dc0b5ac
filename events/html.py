"""The safe HTML subset of entry bodies (CONTRACT.md "Event types" and "Details: HTML subset").

Rules (each breach is named once, in order of first appearance; nothing is ever stripped):
- tags: ``p br a strong em b i ul ol li blockquote h3 h4``, names compared after ASCII-only
  lower-casing as browsers do; any other tag, opening or closing, is refused as ``tag <div>``
  (script, iframe, style, img, svg, math and unknown tags alike);
- attributes: none, except ``href`` and ``title`` on ``<a>``; any other is refused as
  ``attribute onclick on <p>`` (on an end tag, ``attribute onclick on </p>``), a repeated one as
  ``duplicate attribute href on <a>``: browsers drop those, so what we checked would not be what
  readers get;
- ``href`` is read as a browser reads it: character references decoded with the rules for
  attribute values, then (WHATWG URL) leading and trailing C0 controls and spaces stripped and ASCII
  tab, newline and carriage return removed anywhere. Its scheme must then be ``mailto``, or
  ``https`` with a host, no userinfo (``https://trusted.example@evil.example`` only looks
  trusted) and no port but digits. Anything else (``javascript:`` however encoded or split,
  ``http:``, ``data:``, relative and protocol-relative URLs, an empty href) is refused as
  ``url javascript:alert(1) in <a href>``;
- an allowed attribute value holding markup (``<`` then a letter, ``/``, ``!`` or ``?``) is
  refused as ``markup in attribute title on <a>``: harmless in an attribute, it turns live when a
  later tool re-serializes the DOM (mutation XSS);
- comments, doctypes, CDATA sections and processing instructions are refused as ``comment``,
  ``doctype``, ``CDATA section`` and ``processing instruction``; a tag cut off by the end of the
  body as ``unterminated tag`` (a browser would drop it);
- control characters U+0000-U+001F except tab, newline and carriage return, and U+007F
  (CONTRACT.md "Edges"), raw or as numeric character references, are refused as
  ``control character U+0000``.

How: nh3 (html5ever, a browser-grade parser) cleans the body with the same allow-list. When that
gives the body back unchanged, html5ever saw nothing outside the subset and the body is in its
serialization, so only link values and control characters are left to check. Otherwise the stdlib
tokenizer (:class:`html.parser.HTMLParser`) walks the body and names what is refused. When it
names nothing, its reading is compared with nh3's: if nh3 dropped a tag, a link value or any text
the tokenizer saw and allowed, the two parsers disagree about the body, and it is refused as
``markup the sanitizer would remove``. The comparison is on parsed forms (tag names, decoded
attribute values, text without whitespace), never raw strings, since nh3 re-serializes entities
and quoting and html5ever adds implied tags.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from html.entities import html5
from html.parser import HTMLParser
from typing import Final

import nh3

ALLOWED_TAGS: Final = frozenset(
    {"p", "br", "a", "strong", "em", "b", "i", "ul", "ol", "li", "blockquote", "h3", "h4"}
)
LINK_ATTRIBUTES: Final = frozenset({"href", "title"})
LINK_SCHEMES: Final = frozenset({"https", "mailto"})
SANITIZER_WOULD_REMOVE: Final = "markup the sanitizer would remove"

_Position = tuple[int, int]
"""(line from 1, column from 0), as :meth:`HTMLParser.getpos` reports it; orders the names."""

_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NUMERIC_REFERENCE: Final = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+))")
_REFUSED_CODE_POINTS: Final = frozenset(range(0x20)) - {0x09, 0x0A, 0x0D} | {0x7F}
# A value holding "<" then one of these would open a tag, end tag, comment or PI if re-serialized.
_MARKUP_IN_VALUE: Final = re.compile(r"<[A-Za-z/!?]")
# Browsers strip these from both ends of a URL (WHATWG URL: "C0 control or space") ...
_URL_STRIPPED: Final = "".join(chr(c) for c in range(0x21))
# ... and remove these anywhere in it.
_URL_REMOVED: Final = {0x09: None, 0x0A: None, 0x0D: None}
_ASCII_LETTER: Final = re.compile(r"[A-Za-z]")
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_AUTHORITY_END: Final = re.compile(r"[/\\?#]")
# A host (no userinfo: "https://trusted.example@evil.example" only looks like a trusted link),
# then an optional port of digits. Host code points are those WHATWG URL does not forbid.
_AUTHORITY: Final = re.compile(
    r"(?:[^\x00-\x20#%/:<>?@\[\\\]^|\x7f]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?"
)
# Escaped when shown: controls (C0, DEL, C1), format characters such as bidi overrides, and
# separators other than the space.
_INVISIBLE: Final = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]"
)

# A start tag as HTML tokenizes it: whitespace is ASCII; "/" between attributes counts as space; an
# unquoted value runs to whitespace or ">". Used to re-read <a>, the one tag with attributes.
_TAG_NAME: Final = re.compile(r"<[^\t\n\f\r />]*")
_ATTRIBUTE: Final = re.compile(
    r"[\t\n\f\r /]*([^\t\n\f\r />][^\t\n\f\r /=>]*)"
    r"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(\"[^\"]*\"|'[^']*'|[^\t\n\f\r >]*))?"
)
_END_TAG_ATTRIBUTE: Final = re.compile(
    r"</([A-Za-z][^\t\n\f\r />]*)[\t\n\f\r /]+([^\t\n\f\r />][^\t\n\f\r /=>]*)"
)
# A character reference as html.unescape finds one; decoded here with the attribute-value rules.
_REFERENCE: Final = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")

# nh3's output is html5ever's serialization: lower-case names, attribute values in double quotes
# (with "&", '"' and U+00A0 escaped), "<", ">", "&" and U+00A0 escaped in text, no comments.
_SERIALIZED_TAG: Final = re.compile(r'<[^"<>]*(?:"[^"]*"[^"<>]*)*>')
_SERIALIZED_TAG_NAME: Final = re.compile(r"<([a-z0-9]+)")
_SERIALIZED_LINK: Final = re.compile(r'<a((?:\s+[^\s=>]+="[^"]*")*)\s*>')
_SERIALIZED_ATTRIBUTE: Final = re.compile(r'([^\s=>]+)="([^"]*)"')
_NONCHARACTER: Final = re.compile(
    "[\ufdd0-\ufdef"
    + "".join(
        chr(plane + last) for plane in range(0, 0x110000, 0x10000) for last in (0xFFFE, 0xFFFF)
    )
    + "]"
)


def _make_sanitizer() -> Callable[[str], str]:
    """nh3 configured with the contract's allow-list, built once (pyproject pins nh3 >= 0.3.8)."""
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        attributes={"a": set(LINK_ATTRIBUTES)},
        url_schemes=set(LINK_SCHEMES),
        link_rel=None,
        strip_comments=True,
    ).clean


_sanitize: Final = _make_sanitizer()


def refused_html(body: str) -> tuple[str, ...]:
    """Everything in ``body`` outside the subset, each named once, in order of first appearance."""
    cleaned = _sanitize(body)
    if cleaned == body:
        # html5ever read the body as written and nh3 kept all of it: no tag, attribute, scheme or
        # comment is out of the subset, and the body is in html5ever's own serialization, which
        # a regular expression reads exactly. What nh3 does not judge is left to check.
        return _names(_canonical_refusals(body) + _refused_characters(body))
    reader = _Reader()
    reader.read(body)
    names = _names(reader.refused + _refused_characters(body) + _end_tag_attributes(body))
    if not names and _sanitizer_disagrees(cleaned, reader, references="&#" in body):
        return (SANITIZER_WOULD_REMOVE,)
    return names


def _names(found: list[tuple[_Position, str]]) -> tuple[str, ...]:
    """Each name once, in order of first appearance."""
    return tuple(dict.fromkeys(name for _, name in sorted(found, key=lambda item: item[0])))


class _Reader(HTMLParser):
    """Names what is refused; keeps the tags, link values and text it allowed, for the gate."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refused: list[tuple[_Position, str]] = []
        self.tags: set[str] = set()
        self.links: set[tuple[str, str]] = set()
        self.text: list[str] = []

    def read(self, body: str) -> None:
        """Tokenize the whole body; a construct cut off by its end is named, not read as text."""
        try:
            self.feed(body)
            rest = self.rawdata
            if rest.startswith("<") and rest not in ("<", "</"):
                self._refuse(_unterminated(rest))
            else:
                self.close()  # text held back in case a character reference went on
        except (AssertionError, ValueError):
            # html.parser gives up on some declarations with AssertionError, and html.unescape on
            # a decimal reference longer than int() reads (sys.get_int_max_str_digits) with
            # ValueError.
            self._refuse("markup the parser cannot read")

    def _refuse(self, name: str) -> None:
        self.refused.append((self.getpos(), name))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or f"<{tag}>"
        if not raw.isascii() and (tag_name := _TAG_NAME.match(raw)):
            # html.parser lower-cases with str.lower(), which turns the Kelvin sign into "k";
            # browsers lower-case ASCII only, so "<bloc\u212aquote>" is no blockquote to them.
            tag = _ascii_lower(tag_name.group()[1:])
        if tag in ALLOWED_TAGS:
            self.tags.add(tag)
        else:
            self._refuse(f"tag <{_shown(tag, names=True)}>")
        if tag == "a":
            self._link_attributes(raw[2:])  # after "<a", ASCII as the name matched "a"
            return
        for name, _ in attrs:
            self._refuse(f"attribute {_shown(name, names=True)} on <{_shown(tag, names=True)}>")

    def _link_attributes(self, raw: str) -> None:
        seen: set[str] = set()
        for name, value in _browser_attributes(raw):
            if name not in LINK_ATTRIBUTES:
                self._refuse(f"attribute {_shown(name, names=True)} on <a>")
            elif name in seen:
                self._refuse(f"duplicate attribute {name} on <a>")
            elif refusal := _link_value_refusal(name, value):
                self._refuse(refusal)
            else:
                self.links.add((name, value))
            seen.add(name)

    def handle_endtag(self, tag: str) -> None:
        if tag not in ALLOWED_TAGS:
            self._refuse(f"tag <{_shown(tag, names=True)}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self._refuse("comment")

    def handle_decl(self, decl: str) -> None:
        self._refuse("doctype" if decl[:7].lower() == "doctype" else "comment")

    def handle_pi(self, data: str) -> None:
        self._refuse("processing instruction")

    def unknown_decl(self, data: str) -> None:
        self._refuse("CDATA section" if data.startswith("CDATA[") else "comment")

    def parse_html_declaration(self, i: int) -> int:
        """Read ``<!...>`` as browsers do: what html.parser cannot read is a bogus comment."""
        line, column = self.lineno, self.offset
        try:
            return super().parse_html_declaration(i)
        except AssertionError:  # CPython 3.11 raises on "<![name[" sections it does not know
            self.lineno, self.offset = line, column  # it moved the position before raising
            self._refuse("comment")
            end = self.rawdata.find(">", i + 2)
            return -1 if end < 0 else end + 1


def _unterminated(rest: str) -> str:
    """The name of the construct that ``rest``, the end of a body, opens and never closes."""
    if rest.startswith("<?"):
        return "processing instruction"
    if rest[:9].lower() == "<!doctype":
        return "doctype"
    if rest.startswith("<![CDATA["):
        return "CDATA section"
    if rest.startswith("<!") or (rest.startswith("</") and not _ASCII_LETTER.match(rest, 2)):
        return "comment"  # browsers read "<!x" and "</3" as (bogus) comments
    return "unterminated tag"


def _refused_characters(body: str) -> list[tuple[_Position, str]]:
    """Refused control characters, raw or as numeric references, with where each first appears."""
    found: dict[str, int] = {}
    for match in _CONTROL.finditer(body):
        found.setdefault(f"control character U+{ord(match.group()):04X}", match.start())
    if "&#" in body:
        for match in _NUMERIC_REFERENCE.finditer(body):
            hexadecimal, decimal = match.groups()
            digits = (hexadecimal or decimal).lstrip("0") or "0"  # browsers read any leading zeros
            if len(digits) > 3:
                continue  # beyond U+007F
            code = int(digits, 16) if hexadecimal else int(digits)
            if code in _REFUSED_CODE_POINTS:
                found.setdefault(f"control character U+{code:04X}", match.start())
    return [(_position(body, offset), name) for name, offset in found.items()]


def _end_tag_attributes(body: str) -> list[tuple[_Position, str]]:
    """Attributes written on end tags, which browsers (and html.parser) silently drop.

    Read from the raw body: outside tags and comments "</p x" can only be an end tag, and inside
    an attribute value or a comment it is refused anyway.
    """
    if "</" not in body:
        return []
    return [
        (
            _position(body, match.start()),
            f"attribute {_shown(_ascii_lower(match.group(2)), names=True)}"
            f" on </{_shown(_ascii_lower(match.group(1)), names=True)}>",
        )
        for match in _END_TAG_ATTRIBUTE.finditer(body)
    ]


def _position(body: str, offset: int) -> _Position:
    """``offset`` as (line, column), counted the way html.parser counts."""
    return body.count("\n", 0, offset) + 1, offset - (body.rfind("\n", 0, offset) + 1)


def _browser_attributes(raw: str) -> list[tuple[str, str]]:
    """The attributes in ``raw``, a start tag after its name, as a browser reads them.

    html.parser splits attributes on any Unicode space, reads ``title==x`` as ``x`` and decodes
    every reference it can in values; browsers split on ASCII whitespace only, keep the second
    ``=``, and leave a named reference without ";" alone when a letter, digit or "=" follows
    (``?a=1&notify=2`` stays as written).
    """
    position = 0
    found: list[tuple[str, str]] = []
    while (match := _ATTRIBUTE.match(raw, position)) is not None and match.end() > position:
        name, value = match.group(1, 2)
        if value is None:
            value = ""
        elif len(value) > 1 and value[0] in ("'", '"') and value[-1] == value[0]:
            value = value[1:-1]
        found.append((_ascii_lower(name), _REFERENCE.sub(_decode_in_attribute, value)))
        position = match.end()
    return found


def _decode_in_attribute(match: re.Match[str]) -> str:
    reference = match.group(1)
    if reference[0] == "#":
        # html.unescape drops noncharacters and most controls; browsers keep them.
        decoded = unescape(match.group())
        if decoded:
            return decoded
        digits = reference[1:].rstrip(";")
        return chr(int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits))
    if reference in html5:
        return html5[reference]
    for end in range(len(reference) - 1, 1, -1):
        prefix = reference[:end]
        if prefix in html5:  # a legacy name without ";", as in "&copy"
            after = reference[end]
            if after == "=" or (after.isascii() and after.isalnum()):
                return match.group()
            return html5[prefix] + reference[end:]
    return match.group()


def _allowed_url(value: str) -> bool:
    """Whether a browser would read ``value`` as an https URL with a host, or a mailto URL."""
    url = value.strip(_URL_STRIPPED).translate(_URL_REMOVED)
    scheme = _SCHEME.match(url)
    if scheme is None:
        return False  # relative, protocol-relative ("//evil.com") or empty
    name = scheme.group(1).lower()
    if name == "mailto":
        return True
    if name != "https":
        return False
    # https is a "special" scheme: any run of "/" and "\" after the colon leads to the authority.
    authority = _AUTHORITY_END.split(url[scheme.end() :].lstrip("/\\"), maxsplit=1)[0]
    return _AUTHORITY.fullmatch(authority) is not None


def _ascii_lower(name: str) -> str:
    """``name`` lower-cased as HTML does: ASCII letters only."""
    return (
        name.lower() if name.isascii() else "".join(c.lower() if c.isascii() else c for c in name)
    )


def _shown(value: str, *, names: bool = False, limit: int = 80) -> str:
    """``value`` fit for a one-line message: invisible characters escaped, long values cut.

    In tag and attribute ``names`` anything outside ASCII is escaped too, so that a look-alike
    ("bloc\\u212aquote") reads as what it is.
    """
    shown = "".join(
        ascii(c)[1:-1] if (names and not c.isascii()) or _INVISIBLE.match(c) else c for c in value
    )
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _link_value_refusal(name: str, value: str) -> str | None:
    """Why the value of an ``href`` or ``title`` on ``<a>`` is refused, if it is."""
    if _MARKUP_IN_VALUE.search(value):
        return f"markup in attribute {name} on <a>"
    if name == "href" and not _allowed_url(value):
        return f"url {_shown(value)} in <a href>" if value else "empty url in <a href>"
    return None


def _canonical_refusals(body: str) -> list[tuple[_Position, str]]:
    """The link values refused in ``body``, a body exactly as html5ever serializes it."""
    return [
        (_position(body, link.start()), refusal)
        for link in _SERIALIZED_LINK.finditer(body)
        for name, value in _SERIALIZED_ATTRIBUTE.findall(link.group(1))
        if (refusal := _link_value_refusal(name, unescape(value)))
    ]


def _sanitizer_disagrees(cleaned: str, reader: _Reader, *, references: bool) -> bool:
    """Whether nh3, giving ``cleaned``, dropped a tag, link value or text the reader allowed.

    With numeric character ``references`` in the body, noncharacters are left out of the text
    compared: html.parser drops them when they come as references, html5ever keeps them.
    """
    if not reader.tags <= set(_SERIALIZED_TAG_NAME.findall(cleaned)):
        return True
    if reader.links:
        # html5ever folds CR LF and CR into LF before it tokenizes, attribute values included.
        links = {
            (name, _newlines(unescape(value)))
            for tag in _SERIALIZED_LINK.findall(cleaned)
            for name, value in _SERIALIZED_ATTRIBUTE.findall(tag)
        }
        if not {(name, _newlines(value)) for name, value in reader.links} <= links:
            return True
    mine = "".join("".join(reader.text).split())  # html5ever folds CR LF; implied tags move spaces
    theirs = "".join(unescape(_SERIALIZED_TAG.sub("", cleaned)).split())
    if references:
        mine, theirs = _NONCHARACTER.sub("", mine), _NONCHARACTER.sub("", theirs)
    return mine != theirs


def _newlines(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n") if "\r" in value else value
