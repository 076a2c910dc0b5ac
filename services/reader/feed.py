"""A story's Atom 1.0 feed (RFC 4287), in which corrections and retractions travel
(CONTRACT "Corrections readers can see, and feeds").

Rules:
- one ``entry`` per published entry of the state (newest first, as the page lists them), with
  an ``id`` that never changes (``urn:dateline:<story>:<entry id>``: the page's URL may move,
  the entry's identity may not), its ``published`` time, and an ``updated`` that moves with
  every edit, correction or embed (the entry's ``updated_at``);
- an entry's content is its HTML as the page shows it (``type="html"``), then each correction's
  note and time: a reader's feed reader sees what changed, not only that something did;
- a retracted entry is an RFC 6721 ``at:deleted-entry`` (``ref`` = its id, ``when`` = the
  retraction's time, the note as ``at:comment``), never its text;
- the feed's ``updated`` is the story's; its ``id`` the story's URN; it links the page
  (``alternate``) and itself (``self``); every text is escaped by the XML writer, never by
  hand (``xml.etree``: a body cannot end an element or open another).
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET  # only writes XML here: nothing is parsed

from projections.plaintext import one_line
from services.reader.jsonld import shortened
from services.reader.policy import esc
from services.reader.render import full_date

ATOM = "http://www.w3.org/2005/Atom"
TOMBSTONES = "http://purl.org/atompub/tombstones/1.0"
"""RFC 6721's namespace (``at:``)."""
MEDIA_TYPE = "application/atom+xml; charset=utf-8"
AUTHOR = "Dateline"
"""The feed's author when none is known (RFC 4287 needs one on the feed or on every entry)."""

ET.register_namespace("", ATOM)
ET.register_namespace("at", TOMBSTONES)


def entry_urn(story: str, entry_id: str) -> str:
    """An entry's feed ``id``: stable for the entry's life, whatever the page's URL."""
    return f"urn:dateline:{story}:{entry_id}"


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        child.text = text
    return child


def _content(entry: dict[str, Any]) -> str:
    """The entry as HTML: its headline, body and each correction's note and time."""
    parts = []
    if entry.get("headline"):
        parts.append(f"<h2>{esc(str(entry['headline']))}</h2>")
    parts.append(str(entry.get("body") or ""))
    for correction in entry.get("corrections") or ():
        parts.append(
            f"<p><strong>Correction</strong> ({esc(full_date(str(correction['at'])))}):"
            f" {esc(str(correction['note']))}</p>"
        )
    return "".join(parts)


def render_feed(state: dict[str, Any], page_url: str, feed_url: str) -> bytes:
    """The Atom document of ``state`` (the story state the page is made from)."""
    story = str(state["story"])
    feed = ET.Element(f"{{{ATOM}}}feed")
    _add(feed, "id", f"urn:dateline:{story}")
    _add(feed, "title", str(state["title"]))
    if state.get("summary"):
        _add(feed, "subtitle", str(state["summary"]))
    _add(feed, "updated", str(state["updated_at"]))
    _add(feed, "link", rel="alternate", type="text/html", href=page_url)
    _add(feed, "link", rel="self", type="application/atom+xml", href=feed_url)
    author = _add(feed, "author")
    _add(author, "name", AUTHOR)
    _add(feed, "generator", "Dateline")
    for entry in state["entries"]:
        entry_id = str(entry["entry_id"])
        urn = entry_urn(story, entry_id)
        if entry["status"] == "retracted":
            retraction = entry.get("retraction") or {}
            when = str(retraction.get("at") or entry["updated_at"])
            gone = ET.SubElement(feed, f"{{{TOMBSTONES}}}deleted-entry", {"ref": urn, "when": when})
            ET.SubElement(
                gone,
                f"{{{ATOM}}}link",
                {"rel": "alternate", "href": f"{page_url}#entry-{entry_id}"},
            )
            comment = ET.SubElement(gone, f"{{{TOMBSTONES}}}comment")
            comment.text = str(retraction.get("note") or "Retracted")
            continue
        item = _add(feed, "entry")
        _add(item, "id", urn)
        text = one_line(str(entry.get("body") or ""))
        _add(item, "title", str(entry.get("headline") or shortened(text) or "Update"))
        _add(item, "published", str(entry["published_at"]))
        _add(item, "updated", str(entry["updated_at"]))
        _add(item, "link", rel="alternate", type="text/html", href=f"{page_url}#entry-{entry_id}")
        _add(item, "content", _content(entry), type="html")
    written: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return written
