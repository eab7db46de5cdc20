"""Print diagrams: the IFS parts map, laid out by Graphviz.

Graphviz (its ``neato`` program, driven through the ``graphviz`` package) places the parts and
routes the relationship lines around them: ``neato`` with Self as a hub, overlap removal by
VPSC (compact enough for 20 parts on a page) and spline edges that avoid the shapes. Each
node is sized by Graphviz from the measured text, so a name is never cut; a map that would
have to be shrunk below 9 pt to fit the page is not drawn and the parts table stands alone.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

from .charts import svg_data_uri
from .i18n import _, _l, ngettext, words_key

log = logging.getLogger(__name__)

ROLE_COLOURS = {"manager": "#2f6b5e", "firefighter": "#b5542d", "exile": "#5a4b9b",
                "unknown": "#6b7680"}
ROLE_FILLS = {"manager": "#eef5f2", "firefighter": "#fbefe9", "exile": "#f1eff8",
              "unknown": "#f3f4f5"}
ROLE_LABELS = {"manager": _l("Manager"), "firefighter": _l("Firefighter"), "exile": _l("Exile"),
               "unknown": _l("Role not yet known")}
# Shape and border say the role too, so the map reads in greyscale.
ROLE_SHAPES = {"manager": ("box", "rounded,filled"), "firefighter": ("octagon", "filled"),
               "exile": ("ellipse", "filled"), "unknown": ("box", "rounded,dashed,filled")}
EDGE_STYLES = {
    "protects": {"color": "#2f3b45", "style": "solid", "penwidth": "1.6", "dir": "forward",
                 "arrowsize": "0.9"},
    "polarised": {"color": "#b3261e", "style": "dashed", "penwidth": "1.8", "dir": "both",
                  "arrowhead": "tee", "arrowtail": "tee", "arrowsize": "0.7"},
    "allied": {"color": "#2f6b5e", "style": "dotted", "penwidth": "2.2", "dir": "none"},
}
EDGE_LEGEND = {"protects": _l("protects (the arrow points to the part protected)"),
               "polarised": _l("polarised with (dashed, bars at both ends)"),
               "allied": _l("allied with (dotted)")}
FONT = "DejaVu Sans"
NAME_PT = 10.0
ROLE_PT = 9.0
MIN_PRINTED_PT = 9.0
# The printable area a map may use (print.css: .map max-width 170 mm; a page of A4 less
# running heads), in points.
PAGE_WIDTH_PT = 170 / 25.4 * 72
PAGE_HEIGHT_PT = 235 / 25.4 * 72


@dataclass(frozen=True)
class PartsMap:
    svg: bytes
    width_pt: float
    height_pt: float
    alt: str

    @property
    def uri(self) -> str:
        return svg_data_uri(self.svg)

    @property
    def printed_scale(self) -> float:
        return min(1.0, PAGE_WIDTH_PT / self.width_pt, PAGE_HEIGHT_PT / self.height_pt)


def wrap_name(name: str, width: int = 22) -> list[str]:
    """A part's name on lines of about ``width`` characters, every character kept."""
    return textwrap.wrap(" ".join(name.split()), width=width, break_long_words=True,
                         break_on_hyphens=False) or [_("Part")]


def _label(part: dict[str, Any]) -> str:
    role = part.get("role") if part.get("role") in ROLE_LABELS else "unknown"
    name = "<br/>".join(f"<b>{escape(line)}</b>" for line in wrap_name(str(part.get("name")
                                                                            or _("Part"))))
    return (f'<{name}<br/><font point-size="{ROLE_PT}" color="{ROLE_COLOURS[role]}">'
            f'{escape(str(ROLE_LABELS[role]))}</font>>')


# Layouts tried in turn; the first that fits a page at full size is printed. Each removes
# overlaps with VPSC (shapes never touch, the map stays compact); they differ in how the
# initial positions are found.
LAYOUT_MODES = ("KK", "major")
LAYOUT_SECONDS = 20


def layout(parts: list[dict[str, Any]], relationships: list[dict[str, Any]],
           mode: str = LAYOUT_MODES[0]) -> PartsMap:
    """Lay the map out with Graphviz's ``neato``, run as its own process (Graphviz's text
    engine must not share a process with WeasyPrint's)."""
    import graphviz

    graph = graphviz.Digraph("ifs-map", engine="neato", strict=False)
    graph.attr(mode=mode, overlap="vpsc", sep="+8", esep="+3", splines="true", start="1",
               outputorder="edgesfirst", pad="0.08", fontname=FONT, bgcolor="white")
    graph.attr("node", fontname=FONT, fontsize=str(NAME_PT), margin="0.1,0.05",
               penwidth="1.8", fontcolor="#1f2a33")
    graph.node("self", id="self", label=_("Self"), shape="circle", fontsize="14", style="filled",
               fillcolor="#fff6dc", color="#c98a2b", fontcolor="#6b3d00", penwidth="2")
    # Nodes are named by position (n0, n1 …): item ids that differ only in punctuation
    # can never merge two parts into one.
    node_of: dict[str, str] = {}
    for i, part in enumerate(parts):
        node_of.setdefault(str(part.get("item_id")), f"n{i}")
        role = part.get("role") if part.get("role") in ROLE_LABELS else "unknown"
        shape, style = ROLE_SHAPES[role]
        graph.node(f"n{i}", id=f"part-{_node_id(part.get('item_id') or i)}",
                   label=_label(part), shape=shape, style=style, color=ROLE_COLOURS[role],
                   fillcolor=ROLE_FILLS[role])
        # Invisible spokes keep Self among the parts.
        graph.edge("self", f"n{i}", style="invis", len="1.4", weight="0.5")
    for j, rel in enumerate(relationships):
        a, b = node_of.get(str(rel.get("from_part"))), node_of.get(str(rel.get("to_part")))
        kind = rel.get("kind") if rel.get("kind") in EDGE_STYLES else "allied"
        if a is None or b is None:
            continue
        graph.edge(a, b, id=f"rel-{j}-{kind}", len="1.2", **EDGE_STYLES[kind])
    # The graphviz package writes the DOT source (quoting every name and label); neato
    # runs with a time limit of its own.
    svg = subprocess.run(["neato", "-Tsvg"], input=graph.source.encode(), capture_output=True,
                         check=True, timeout=LAYOUT_SECONDS).stdout
    # The drawing's size, as Graphviz writes it on the <svg> element (points).
    size = re.search(rb'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    return PartsMap(svg, float(size[1]), float(size[2]), describe(parts, relationships))


def _node_id(value: Any) -> str:
    """An item id as a Graphviz node name: letters, digits, - and _ only."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(value))


def describe(parts: list[dict[str, Any]], relationships: list[dict[str, Any]]) -> str:
    """The map in words, for the PDF's alternative text."""
    names = {str(p.get("item_id")): str(p.get("name") or _("Part")) for p in parts}
    by_role: dict[str, list[str]] = {}
    for p in parts:
        role = p.get("role") if p.get("role") in ROLE_LABELS else "unknown"
        by_role.setdefault(role, []).append(str(p.get("name") or _("Part")))
    # The roles as named within a sentence.
    role_words = {"manager": _("manager"), "firefighter": _("firefighter"), "exile": _("exile"),
                  "unknown": _("role not yet known")}
    roles = "; ".join(_("%(role)s: %(parts)s", role=role_words[r], parts=", ".join(n))
                      for r, n in by_role.items())

    def related(kind: Any, part: str, other: str) -> str:
        if kind == "protects":
            return _("%(part)s protects %(other)s", part=part, other=other)
        if kind == "polarised":
            return _("%(part)s is polarised with %(other)s", part=part, other=other)
        return _("%(part)s is allied with %(other)s", part=part, other=other)

    rels = [related(r.get("kind"), names[str(r.get("from_part"))], names[str(r.get("to_part"))])
            for r in relationships
            if str(r.get("from_part")) in names and str(r.get("to_part")) in names]
    text = ngettext("Parts map around Self, %(num)d part (%(roles)s).",
                    "Parts map around Self, %(num)d parts (%(roles)s).", len(parts), roles=roles)
    if rels:
        text += " " + "; ".join(rels) + "."
    return text


@lru_cache(maxsize=1)
def graphviz_installed() -> bool:
    return shutil.which("neato") is not None


def ifs_map(parts: list[dict[str, Any]], relationships: list[dict[str, Any]]) -> PartsMap | None:
    """The map, or None when it cannot be printed legibly on one page (the parts table
    then stands alone). A signed map never changes: it is laid out once per process."""
    return _ifs_map(json.dumps([parts, relationships], sort_keys=True, default=str),
                    words_key())


@lru_cache(maxsize=64)
def _ifs_map(key: str, words: tuple[str, str] = ("", "")) -> PartsMap | None:
    parts, relationships = json.loads(key)
    if not graphviz_installed():
        log.warning("Graphviz is not installed (Debian: apt-get install graphviz): the IFS "
                    "parts map is left out and the parts table printed alone")
        return None
    for mode in LAYOUT_MODES:
        drawn = layout(parts, relationships, mode)
        if ROLE_PT * drawn.printed_scale >= MIN_PRINTED_PT - 0.01:
            return drawn
    return None
