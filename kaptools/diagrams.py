"""Print diagrams: the IFS parts map and the EMDR SUD/VOC trajectory."""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape

from .outcomes import svg_data_uri

ROLE_COLOURS = {"manager": "#2f6b5e", "firefighter": "#b5542d", "exile": "#5a4b9b",
                "unknown": "#6b7680"}
ROLE_LABELS = {"manager": "Manager", "firefighter": "Firefighter", "exile": "Exile",
               "unknown": "Not yet known"}
# Where each role sits around Self (angles in degrees; 0 = right, 90 = down).
ROLE_ARCS = {"manager": (-160, -20), "firefighter": (-10, 60), "exile": (70, 150),
             "unknown": (160, 200)}
LINE_STYLES = {
    "protects": 'stroke="#2f3b45" stroke-width="1.6" marker-end="url(#arrow)"',
    "polarised": 'stroke="#b3261e" stroke-width="1.8" stroke-dasharray="7 4"',
    "allied": 'stroke="#2f6b5e" stroke-width="1.6" stroke-dasharray="2 3"',
}
LINE_LABELS = {"protects": "protects (arrow points to the part protected)",
               "polarised": "polarised with", "allied": "allied with"}


def _wrap(text: str, width: int = 16) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return lines[:3]


NODE_RX, NODE_RY = 58, 36


def _ellipse_radius(cos: float, sin: float) -> float:
    """Distance from a part's centre to its outline in the direction (cos, sin)."""
    return NODE_RX * NODE_RY / math.hypot(NODE_RY * cos, NODE_RX * sin)


def ifs_map_svg(parts: list[dict[str, Any]], relationships: list[dict[str, Any]],
                width: int = 640, height: int = 470) -> str:
    """Self in the centre, parts around it by role, lines by relationship type."""
    cx, cy = width / 2, height / 2 - 20
    rx, ry = width / 2 - 90, height / 2 - 80
    by_role: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        by_role.setdefault(part.get("role") or "unknown", []).append(part)
    places: dict[str, tuple[float, float]] = {}
    for role, members in by_role.items():
        start, end = ROLE_ARCS.get(role, ROLE_ARCS["unknown"])
        for i, part in enumerate(members):
            angle = math.radians(start + (end - start) * (i + 1) / (len(members) + 1))
            places[part["item_id"]] = (cx + rx * math.cos(angle), cy + ry * math.sin(angle))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Source Sans 3, DejaVu Sans, sans-serif">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
           'fill="#2f3b45"/></marker></defs>',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    # Lines first, so the nodes sit on top.
    for rel in relationships:
        a, b = places.get(rel.get("from_part")), places.get(rel.get("to_part"))
        if not a or not b:
            continue
        style = LINE_STYLES.get(rel.get("kind"), LINE_STYLES["allied"])
        if a == b:
            # A part in relation with itself (e.g. torn within): a loop above it.
            x, top = a[0], a[1] - NODE_RY
            out.append(f'<path d="M{x - 16:.1f},{top + 2:.1f} C{x - 40:.1f},{top - 44:.1f} '
                       f'{x + 40:.1f},{top - 44:.1f} {x + 16:.1f},{top + 2:.1f}" fill="none" '
                       f'{style}/>')
            continue
        dx, dy = b[0] - a[0], b[1] - a[1]
        dist = math.hypot(dx, dy) or 1
        pad = _ellipse_radius(dx / dist, dy / dist) + 5
        x1, y1 = a[0] + dx / dist * pad, a[1] + dy / dist * pad
        x2, y2 = b[0] - dx / dist * pad, b[1] - dy / dist * pad
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {style}/>')
    # Self in the centre.
    out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="46" fill="#fff6dc" stroke="#c98a2b" '
               'stroke-width="2"/>')
    out.append(f'<text x="{cx:.1f}" y="{cy + 6:.1f}" text-anchor="middle" font-size="18" '
               'font-weight="700" fill="#6b3d00">Self</text>')
    for part in parts:
        x, y = places[part["item_id"]]
        colour = ROLE_COLOURS.get(part.get("role") or "unknown", ROLE_COLOURS["unknown"])
        out.append(f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{NODE_RX}" ry="{NODE_RY}" '
                   f'fill="#ffffff" stroke="{colour}" stroke-width="2.2"/>')
        lines = _wrap(str(part.get("name") or "Part"))
        top = y - (len(lines) - 1) * 7 - 4
        for j, line in enumerate(lines):
            out.append(f'<text x="{x:.1f}" y="{top + j * 14:.1f}" text-anchor="middle" '
                       f'font-size="12.5" font-weight="600" fill="#1f2a33">{escape(line)}</text>')
        role = ROLE_LABELS.get(part.get("role") or "unknown", "")
        out.append(f'<text x="{x:.1f}" y="{top + len(lines) * 14 + 1:.1f}" text-anchor="middle" '
                   f'font-size="10" fill="{colour}">{escape(role)}</text>')
    # Legend.
    ly = height - 34
    lx = 14
    for kind, label in LINE_LABELS.items():
        style = LINE_STYLES[kind]
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 34}" y2="{ly}" {style}/>')
        out.append(f'<text x="{lx + 40}" y="{ly + 4}" font-size="10.5" fill="#1f2a33">'
                   f'{escape(label)}</text>')
        lx += 40 + len(label) * 5.6 + 18
    out.append("</svg>")
    return "".join(out)


def ifs_map_uri(parts, relationships) -> str:
    return svg_data_uri(ifs_map_svg(parts, relationships).encode())


def emdr_trajectory_uri(answers: dict[str, Any]) -> str | None:
    """SUD down and VOC up through one session: assessment, each SUD check, installation."""
    import pygal
    from pygal.style import Style

    labels, sud, voc = [], [], []
    if answers.get("sud_baseline") is not None or answers.get("voc_baseline") is not None:
        labels.append("Assessment")
        sud.append(answers.get("sud_baseline"))
        voc.append(answers.get("voc_baseline"))
    for i, item in enumerate(answers.get("bls_sets") or []):
        if item.get("sud") is None:
            continue
        labels.append(f"Set {item.get('set_number', i + 1)}")
        sud.append(item["sud"])
        voc.append(None)
    if answers.get("voc_before") is not None:
        labels.append("Installation")
        sud.append(None)
        voc.append(answers["voc_before"])
    if answers.get("voc_after") is not None or answers.get("sud_end") is not None:
        labels.append("End")
        sud.append(answers.get("sud_end"))
        voc.append(answers.get("voc_after"))
    if sum(v is not None for v in sud + voc) < 2:
        return None
    style = Style(background="white", plot_background="white", foreground="#1f2a33",
                  foreground_strong="#1f2a33", foreground_subtle="#d9dee2",
                  colors=("#b3261e", "#2f6b5e"), font_family="DejaVu Sans, sans-serif",
                  label_font_size=11, major_label_font_size=11, legend_font_size=12)
    chart = pygal.Line(width=620, height=250, style=style, range=(0, 10), secondary_range=(1, 7),
                       dots_size=4, js=[], legend_at_bottom=True, include_x_axis=True,
                       y_title="SUD (0–10)")
    chart.x_labels = labels
    chart.add("SUD", sud, allow_interruptions=False)
    chart.add("VOC (1–7, right axis)", voc, secondary=True, allow_interruptions=False)
    return svg_data_uri(chart.render())
