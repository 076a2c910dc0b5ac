"""The demo's sample story: Storm Oriane reaching the (fictional) Veyra coast, in 44 events.

Everything here is invented for Dateline: the storm, the coast, its towns, agencies and people.
Embeds point at real providers (so the allow-list accepts them) but at illustrative content: the
image is a public-domain NASA photo of another hurricane, captioned as such; the video and social
post ids are made up; the advisory link is on example.org, the domain kept for documentation.

The story exercises every kind of event a newsroom sends: about 30 entries with time labels, key
events, a pin that later moves, a silent edit (a typo), a correction and a retraction each with a
note for readers, embeds of every kind, a story update and, at the end, the story closing. Each
step has a stable key: the player sends it as the ``Idempotency-Key`` (with the story id), so a
restarted demo never posts a step twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TITLE = "Storm Oriane: live updates as it nears the Veyra coast"
SUMMARY = (
    "Storm Oriane is forecast to make landfall on the Veyra coast this evening. Follow our "
    "reporters in Port Calder, Merrow Bay and Saltwick for warnings, evacuations and travel news."
)
TITLE_AFTER_LANDFALL = "Storm Oriane makes landfall near Merrow Bay: live updates"
SUMMARY_AFTER_LANDFALL = (
    "Oriane came ashore near Merrow Bay at about 1850 GMT with sustained winds of 130 km/h. "
    "Power cuts, roof damage and flooding along the River Ashby; no deaths reported so far."
)


@dataclass(frozen=True, slots=True)
class Step:
    """One request of the demo: an event ``type`` with its ``data``, under a stable ``key``."""

    key: str
    type: str
    data: dict[str, Any]

    def request(self, story: str) -> tuple[str, dict[str, Any]]:
        """The HTTP path and JSON body that append this step to ``story``."""
        if self.type == "story.opened":
            return "/stories", {"story": story, **self.data}
        return f"/stories/{story}/events", {"type": self.type, "data": self.data}


def _entry(
    entry_id: str,
    time_label: str,
    body: str,
    headline: str | None = None,
    *,
    key_event: bool = False,
) -> Step:
    data: dict[str, Any] = {"entry_id": entry_id, "time_label": time_label, "body": body}
    if headline is not None:
        data["headline"] = headline
    if key_event:
        data["key_event"] = True
    return Step(entry_id, "entry.published", data)


def _embed(
    entry_id: str, embed_id: str, kind: str, url: str, caption: str, alt: str | None = None
) -> Step:
    data: dict[str, Any] = {
        "entry_id": entry_id,
        "embed_id": embed_id,
        "kind": kind,
        "url": url,
        "caption": caption,
    }
    if alt is not None:
        data["alt"] = alt
    return Step(f"{entry_id}-{embed_id}", "embed.attached", data)


WIND_WRONG = (
    "<p>The Veyra Meteorological Office (VMO) says Oriane's sustained winds have reached "
    "<strong>150 km/h</strong>, with gusts above 170 km/h over open water. Forecasters expect "
    "little change in strength before landfall.</p>"
)
WIND_RIGHT = (
    "<p>The Veyra Meteorological Office (VMO) says Oriane's sustained winds have reached "
    "<strong>130 km/h</strong>, with gusts above 170 km/h over open water. Forecasters expect "
    "little change in strength before landfall.</p>"
)
QUEUES_TYPO = (
    "<p>Supermarkest in Port Calder report long queues since opening, with bottled water, "
    "batteries and tinned food selling fast. Several stores say they will close at 1500 GMT so "
    "staff can get home.</p>"
)
QUEUES_FIXED = QUEUES_TYPO.replace("Supermarkest", "Supermarkets")

KNOW_SO_FAR = (
    "<ul>"
    "<li>A <strong>red warning</strong> covers the coast from Hollin Point to Saltwick.</li>"
    "<li>Landfall is expected near <strong>Merrow Bay</strong> around 1900 GMT.</li>"
    "<li>Low-lying parts of Merrow Bay are under an evacuation order; shelters are open.</li>"
    "<li>Ferries, coastal trains and flights after 1500 GMT are cancelled.</li>"
    "</ul><p>If you are in the warning area, follow the instructions of the Coastal "
    "Emergency Authority and stay away from the seafront.</p>"
)


def steps() -> tuple[Step, ...]:
    """Every request of the demo, in the order it is played."""
    return (
        Step("open", "story.opened", {"title": TITLE, "summary": SUMMARY}),
        _entry(
            "e01",
            "0600 GMT",
            "<p>Good morning. Storm Oriane is about 400 km off the Veyra coast and moving "
            "north-west at 20 km/h. Forecasters expect it to come ashore this evening. We will "
            "bring you warnings, travel news and reports from our correspondents all day.</p>",
        ),
        _entry(
            "e02",
            "0615 GMT",
            "<p>The Veyra Meteorological Office has raised its warning to <strong>red</strong> "
            "for the coastal districts between Hollin Point and Saltwick, the highest level on "
            "its scale. A red warning means a danger to life from flying debris, storm surge "
            "and flooding.</p>",
            "Red warning issued for the Veyra coast",
            key_event=True,
        ),
        _embed(
            "e02",
            "warning-map",
            "map",
            "https://www.openstreetmap.org/?mlat=47.20&mlon=-4.10#map=8/47.20/-4.10",
            "The stretch of coast under the red warning (illustrative map).",
        ),
        _entry(
            "e03",
            "0640 GMT",
            "<p>The Coastal Emergency Authority has ordered residents of low-lying streets in "
            "Merrow Bay to leave their homes by 1400 GMT. Shelters are open at:</p><ul>"
            "<li>Merrow Bay sports centre</li><li>St Brannoc's school, upper town</li>"
            "<li>The Ashby Road community hall</li></ul>",
            "Evacuation ordered in Merrow Bay",
            key_event=True,
        ),
        _entry(
            "e04",
            "0705 GMT",
            "<p>All ferry crossings from Port Calder are suspended until further notice, and "
            "the harbour master has closed the port to incoming vessels.</p>",
        ),
        _entry(
            "e05",
            "0730 GMT",
            "<p>The latest satellite pictures show a clear, well-formed eye, which forecasters "
            "say is a sign the storm is holding its strength.</p>",
        ),
        _embed(
            "e05",
            "satellite",
            "image",
            "https://upload.wikimedia.org/wikipedia/commons/0/04/Hurricane_Isabel_from_ISS.jpg",
            "File image: a hurricane seen from the International Space Station (NASA, public "
            "domain). This is not Storm Oriane.",
            alt="A swirl of white cloud over a dark blue ocean, with a round, clear eye at its "
            "centre, photographed from orbit.",
        ),
        _entry(
            "e06",
            "0755 GMT",
            "<p>Every school on the coast will stay closed today. The regional education board "
            "says this week's exams are postponed to next Monday.</p>",
        ),
        _entry("e07", "0820 GMT", WIND_WRONG, "Winds strengthen offshore"),
        _entry(
            "e08",
            "0845 GMT",
            "<p>Port Calder's harbour master, Idris Lane, told us the fishing fleet came in "
            "overnight:</p><blockquote>Every boat is tied up and doubled up. What worries me now "
            "is the surge, not the wind.</blockquote>",
        ),
        _entry("e09", "0910 GMT", QUEUES_TYPO),
        Step(
            "e07-correct",
            "entry.corrected",
            {
                "entry_id": "e07",
                "body": WIND_RIGHT,
                "note": "An earlier version of this update gave the sustained wind speed as "
                "150 km/h. The VMO's figure is 130 km/h.",
            },
        ),
        _entry(
            "e10",
            "0935 GMT",
            "<p>The rail operator says no trains will run on the coast line after 1400 GMT. "
            "Replacement buses will not run either.</p>",
        ),
        _entry(
            "e11",
            "1000 GMT",
            "<p>The VMO's 1000 GMT advisory keeps the red warning in place and brings the "
            "expected landfall forward by about an hour.</p>",
        ),
        _embed(
            "e11",
            "advisory",
            "link",
            "https://www.example.org/veyra-met-office/advisories/oriane-14",
            "VMO advisory 14 (the full text, with the warning areas).",
        ),
        Step("e09-typo", "entry.edited", {"entry_id": "e09", "body": QUEUES_FIXED}),
        _entry(
            "e12",
            "1030 GMT",
            "<p>Pictures shared online appear to show the old pier at Saltwick collapsing into "
            "the sea. We are working to confirm them.</p>",
            "Saltwick pier reported to have collapsed",
        ),
        _entry(
            "e13",
            "1055 GMT",
            "<p>The power company says 600 engineers are standing by along the coast, ready to "
            "restore supplies once it is safe to work.</p>",
        ),
        _entry(
            "e14",
            "1120 GMT",
            "<p>The VMO has posted a short update on the storm's track:</p>",
        ),
        _embed(
            "e14",
            "vmo-post",
            "social",
            "https://bsky.app/profile/veyra-met.bsky.social/post/3loriane1120",
            "The Veyra Meteorological Office on Bluesky.",
        ),
        Step(
            "e12-retract",
            "entry.retracted",
            {
                "entry_id": "e12",
                "note": "This update reported that the old pier at Saltwick had collapsed. It "
                "has not: the pictures were of another pier, in an earlier storm. We have "
                "withdrawn the update.",
            },
        ),
        _entry(
            "e15",
            "1150 GMT",
            "<p>Forecasters have nudged the storm's track east. Landfall is now expected near "
            "<strong>Merrow Bay</strong> at about 1900 GMT, rather than at Hollin Point.</p>",
            "Landfall now expected near Merrow Bay",
            key_event=True,
        ),
        _entry("e16", "1215 GMT", KNOW_SO_FAR, "What we know so far"),
        Step("pin-e16", "entry.pinned", {"entry_id": "e16"}),
        _entry(
            "e17",
            "1300 GMT",
            "<p>Veyra International Airport has cancelled every departure and arrival after "
            "1500 GMT. Passengers are asked not to travel to the airport.</p>",
        ),
        _entry(
            "e18",
            "1340 GMT",
            "<p>The first rain bands have reached Hollin Point, where a gust of 90 km/h was "
            "recorded a few minutes ago.</p>",
        ),
        _entry(
            "e19",
            "1420 GMT",
            "<p>Waves are already breaking over the sea wall on Port Calder's promenade, which "
            "police have closed.</p>",
        ),
        _embed(
            "e19",
            "seafront",
            "video",
            "https://www.youtube.com/watch?v=Or1aNeWaves",
            "Video: waves over the sea wall in Port Calder this afternoon.",
        ),
        _entry(
            "e20",
            "1505 GMT",
            "<p>About 12,000 homes on the coast are without power, the power company says, "
            "mostly around Hollin Point.</p>",
        ),
        _entry(
            "e21",
            "1550 GMT",
            "<p>The coastguard has lifted two people from a yacht that lost its mast off "
            "Saltwick. Both are safe and being checked in hospital.</p>",
            "Two rescued from a yacht off Saltwick",
        ),
        _entry(
            "e22",
            "1715 GMT",
            "<p>The River Ashby is rising fast. A flood warning now covers the villages "
            "upstream of Merrow Bay, where residents are moving cars to higher ground.</p>",
        ),
        _entry(
            "e23",
            "1810 GMT",
            "<p>The eye wall is now about 30 km offshore. The VMO still puts sustained winds at "
            "130 km/h. Our correspondent in Merrow Bay says the streets are empty.</p>",
        ),
        _entry(
            "e24",
            "1850 GMT",
            "<p>Storm Oriane has made landfall just west of <strong>Merrow Bay</strong>, the "
            "VMO says, with sustained winds of 130 km/h and a storm surge of about two "
            "metres.</p>",
            "Oriane makes landfall near Merrow Bay",
            key_event=True,
        ),
        Step("pin-e24", "entry.pinned", {"entry_id": "e24"}),
        Step(
            "landfall-title",
            "story.updated",
            {"title": TITLE_AFTER_LANDFALL, "summary": SUMMARY_AFTER_LANDFALL},
        ),
        _entry(
            "e25",
            "1920 GMT",
            "<p>Residents of Port Calder report roofs torn off in the old town. The fire "
            "service says it is answering calls only where lives are at risk until the winds "
            "ease.</p>",
        ),
        _entry(
            "e26",
            "2005 GMT",
            "<p>Power cuts now affect about 48,000 homes, the power company says.</p>",
        ),
        _entry(
            "e27",
            "2040 GMT",
            "<p>The Coastal Emergency Authority says no deaths have been reported. Three people "
            "were treated for minor injuries from falling debris in Saltwick.</p>",
            "No deaths reported so far",
            key_event=True,
        ),
        _entry(
            "e28",
            "2130 GMT",
            "<p>Oriane is weakening as it moves inland. The VMO has downgraded it to a tropical "
            "storm, with sustained winds of 95 km/h.</p>",
            "Oriane weakens inland",
            key_event=True,
        ),
        _entry(
            "e29",
            "2215 GMT",
            "<p>The red warning has been lifted for Hollin Point; an amber warning stays in "
            "place elsewhere on the coast until 0600 GMT. The clean-up will start at first "
            "light.</p>",
        ),
        _entry(
            "e30",
            "2245 GMT",
            "<p>The evacuation order for Merrow Bay remains in force overnight. The authority "
            "asks residents not to return home until engineers have checked the streets.</p>",
        ),
        _entry(
            "e31",
            "2300 GMT",
            "<p>We are pausing our live coverage here. Thank you for following. Our reporters "
            'will be back at first light; the <a href="https://www.example.org/veyra-met-office'
            '/advisories">latest VMO advisories</a> are published through the night.</p>',
        ),
        Step(
            "close",
            "story.closed",
            {"note": "Live coverage of Storm Oriane has ended for tonight."},
        ),
    )


STEPS = steps()
"""The demo's requests, in order; the story's version after step ``i`` is ``i + 1``."""
ENTRIES = sum(1 for s in STEPS if s.type == "entry.published")
