"""The terminal renderer of a story: ``Printer`` writes snapshot and change frames as a readable log.

Rules (docs/cli.md "dateline tail", "dateline audit replay"):
- a snapshot prints oldest first, like a log (newest last): title, status and version, summary,
  key events, the pinned entry, then each entry with its time label (else its time in UTC), its
  body as plain text (``projections.plaintext``), its correction notes and embeds; a
  retracted entry is a tombstone with its note, never its body;
- a change prints as it lands: corrections in yellow with their note and the new body,
  retractions in red with their note, silent edits, unpins and removed embeds quietly, pins,
  embeds and story updates marked; each change line ends with its version (``v12``);
- ``tail`` and ``audit replay`` print with it, so the two show a story the same way.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from projections.plaintext import excerpt, html_text

Frame = dict[str, Any]


def _when(entry: Frame) -> str:
    label = entry.get("time_label")
    if label:
        return str(label)
    published = str(entry.get("published_at") or "")
    return f"{published[11:16]} UTC" if len(published) >= 16 else ""


def _excerpt(entry: Frame, size: int = 70) -> str:
    if entry.get("headline"):
        return str(entry["headline"])
    return excerpt(entry.get("body") or "", size)


class Printer:
    """Writes frames to a rich console as a readable log of the story."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.embeds: dict[str, set[str]] = {}

    def __call__(self, frame: Frame) -> None:
        if frame.get("type") == "snapshot":
            self.snapshot(frame)
        elif frame.get("type") == "change":
            self.change(frame)

    # -- pieces --

    def _line(self, *parts: tuple[str, str], indent: int = 0) -> None:
        text = Text()
        for content, style in parts:
            text.append(content, style=style)
        self.console.print(Padding(text, (0, 0, 0, indent), expand=False) if indent else text)

    def _remember(self, entry: Frame) -> set[str]:
        """Note the entry's embeds; return those not seen before."""
        ids = {str(e["embed_id"]) for e in entry.get("embeds") or []}
        known = self.embeds.get(str(entry["entry_id"]), set())
        self.embeds[str(entry["entry_id"])] = ids
        return ids - known

    def _embed(self, embed: Frame) -> None:
        parts = [(f"[{embed['kind']}] ", "cyan"), (str(embed["url"]), "underline")]
        if embed.get("caption"):
            parts.append((f"  {embed['caption']}", ""))
        self._line(*parts, indent=4)
        if embed.get("alt"):
            self._line((f"alt: {embed['alt']}", "dim"), indent=4)

    def entry(self, entry: Frame, version: int | None = None) -> None:
        """An entry in full: time, headline, body (or tombstone), corrections, embeds."""
        self._remember(entry)
        head: list[tuple[str, str]] = [(_when(entry) or "—", "bold")]
        if entry.get("key_event"):
            head.append(("  KEY EVENT", "bold magenta"))
        if entry.get("headline"):
            head.append((f"  {entry['headline']}", "bold"))
        if version is not None:
            head.append((f"  v{version}", "dim"))
        if entry.get("status") == "retracted":
            retraction = entry.get("retraction") or {}
            self._line(*head)
            self._line(
                ("RETRACTED ", "bold red"), (str(retraction.get("note", "")), "red"), indent=4
            )
            return
        self._line(*head)
        body = html_text(entry.get("body") or "")
        if body:
            self.console.print(Padding(Text(body), (0, 0, 0, 4), expand=False))
        for correction in entry.get("corrections") or []:
            self._line(
                ("CORRECTED ", "bold yellow"), (str(correction.get("note", "")), "yellow"), indent=4
            )
        for embed in entry.get("embeds") or []:
            self._embed(embed)

    def snapshot(self, frame: Frame) -> None:
        state: Frame = frame["state"]
        if frame.get("reset"):
            self.console.rule(Text(f"resynchronised at version {frame['version']}", style="dim"))
        self.console.rule(Text(str(state.get("title", frame["story"])), style="bold"))
        status = f"{state.get('status', 'live')} · version {frame['version']}"
        self._line((status, "dim"))
        if state.get("summary"):
            self._line((str(state["summary"]), "italic"))
        if state.get("status") == "closed" and state.get("closed_note"):
            self._line(("STORY CLOSED ", "bold"), (str(state["closed_note"]), ""))
        key_events = state.get("key_events") or []
        if key_events:
            self._line(("Key events: ", "bold magenta"), ("; ".join(_headlines(key_events)), ""))
        pinned = state.get("pinned")
        if pinned:
            self._line(("PINNED ", "bold blue"), (_excerpt(pinned), ""))
        entries = list(state.get("entries") or [])
        if state.get("next_before"):
            self._line((f"(earlier entries not shown; the latest {len(entries)} follow)", "dim"))
        self.console.print()
        for entry in reversed(entries):
            self.entry(entry)
            self.console.print()

    def change(self, frame: Frame) -> None:
        event = str(frame.get("event"))
        version = int(frame["version"])
        entry: Frame | None = frame.get("entry")
        meta: Frame = frame.get("story_meta") or {}
        v = (f"  v{version}", "dim")
        if event == "entry.published" and entry:
            self.entry(entry, version)
        elif event == "entry.corrected" and entry:
            note = (entry.get("corrections") or [{}])[-1].get("note", "")
            self._line(("CORRECTED ", "bold yellow"), (f"{_when(entry)}  {_excerpt(entry)}", ""), v)
            self._line((str(note), "yellow"), indent=4)
            self.console.print(
                Padding(Text(html_text(entry.get("body") or "")), (0, 0, 0, 4), expand=False)
            )
            self._remember(entry)
        elif event == "entry.retracted" and entry:
            note = (entry.get("retraction") or {}).get("note", "")
            self._line(("RETRACTED ", "bold red"), (f"{_when(entry)}  {_excerpt(entry)}", ""), v)
            self._line((str(note), "red"), indent=4)
            self._remember(entry)
        elif event == "entry.edited" and entry:
            self._line((f"edited {_when(entry)}: {_excerpt(entry)}", "dim"), v)
            self._remember(entry)
        elif event == "entry.pinned" and entry:
            self._line(("PINNED ", "bold blue"), (f"{_when(entry)}  {_excerpt(entry)}", ""), v)
        elif event == "entry.unpinned" and entry:
            self._line((f"unpinned {_when(entry)}: {_excerpt(entry)}", "dim"), v)
        elif event == "embed.attached" and entry:
            added = self._remember(entry)
            self._line(("EMBED ", "bold cyan"), (f"on {_when(entry)}  {_excerpt(entry)}", ""), v)
            for embed in entry.get("embeds") or []:
                if str(embed["embed_id"]) in added:
                    self._embed(embed)
        elif event == "embed.removed" and entry:
            self._remember(entry)
            self._line((f"embed removed from {_when(entry)}: {_excerpt(entry)}", "dim"), v)
        elif event in ("story.updated", "story.opened"):
            label = "STORY UPDATED " if event == "story.updated" else "STORY OPENED "
            self._line((label, "bold green"), (str(meta.get("title", "")), "bold"), v)
            if meta.get("summary"):
                self._line((str(meta["summary"]), "italic"), indent=4)
        elif event == "story.closed":
            self._line(("STORY CLOSED ", "bold"), (str(meta.get("closed_note") or ""), ""), v)
        else:
            self._line((f"{event}", "dim"), v)


def _headlines(key_events: list[Frame]) -> list[str]:
    return [str(k.get("headline") or k.get("entry_id")) for k in reversed(key_events)]
