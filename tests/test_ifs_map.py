"""The IFS parts map (issue 12): laid out by Graphviz, legible at 4, 12 and 20 parts with
every relationship type — no overlapping shapes, no cut names, nothing under 9 pt on paper —
and the parts table alone beyond what fits on a page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

from kaptools import diagrams

SVG = "{http://www.w3.org/2000/svg}"
ROLES = ["manager", "firefighter", "exile", "unknown"]
NAMES = ["The Relentless Planner", "Little one", "The Critic who keeps the score", "Numbing",
         "Scrolling at 3 a.m.", "The caretaker who never rests", "Shame",
         "Ten-year-old at the table", "Perfectionist", "The Wall", "Binge",
         "Lonely boy in the cloakroom", "Pleaser",
         "Watcher <at the window> & door", "Rage", "Frozen one", "Achiever", "Sceptic",
         "Scared girl on the stairs", "Drinker"]


def parts_map(n: int) -> tuple[list[dict], list[dict]]:
    parts = [{"item_id": f"p{i}", "name": NAMES[i], "role": ROLES[i % 4]} for i in range(n)]
    kinds = ["protects", "polarised", "allied"]
    rels = [{"from_part": f"p{i}", "to_part": f"p{(i + 1 + i % 3) % n}", "kind": kinds[i % 3]}
            for i in range(n)]
    rels.append({"from_part": "p0", "to_part": "p0", "kind": "allied"})  # torn within
    return parts, rels


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", text)]


def node_boxes(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    """Each node's outline as a box (x0, y0, x1, y1), from its polygon, path or ellipse."""
    boxes = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") != "node":
            continue
        xs, ys = [], []
        for el in g:
            tag = el.tag.removeprefix(SVG)
            if tag == "polygon":
                nums = _numbers(el.get("points"))
            elif tag == "path":
                nums = _numbers(el.get("d"))
            elif tag == "ellipse":
                cx, cy, rx, ry = (float(el.get(k)) for k in ("cx", "cy", "rx", "ry"))
                nums = [cx - rx, cy - ry, cx + rx, cy + ry]
            else:
                continue
            xs += nums[::2]
            ys += nums[1::2]
        boxes[g.get("id")] = (min(xs), min(ys), max(xs), max(ys))
    return boxes


def text_width(text: str, size: float, bold: bool) -> float:
    props = FontProperties(family="DejaVu Sans", size=size, weight="bold" if bold else "normal")
    return TextToPath().get_text_width_height_descent(text, props, ismath=False)[0]


@pytest.mark.parametrize("n", [4, 12, 20])
def test_map_is_legible_with_every_relationship_type(n):
    parts, rels = parts_map(n)
    drawn = diagrams.ifs_map(parts, rels)
    assert drawn is not None, f"{n} parts should fit on a page"
    root = ET.fromstring(drawn.svg)
    boxes = node_boxes(root)
    assert set(boxes) == {"self"} | {f"part-p{i}" for i in range(n)}
    ids = sorted(boxes)
    for i, a in enumerate(ids):  # no two shapes overlap (Self included)
        for b in ids[i + 1:]:
            A, B = boxes[a], boxes[b]
            assert not (A[0] < B[2] and B[0] < A[2] and A[1] < B[3] and B[1] < A[3]), (a, b)
    scale = drawn.printed_scale
    for part in parts:
        group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == f"part-{part['item_id']}")
        texts = list(group.iter(f"{SVG}text"))
        role_line = texts[-1]
        assert role_line.text == diagrams.ROLE_LABELS[part["role"]]
        # The whole name, line by line, each line inside the shape and at 9 pt or more.
        assert " ".join(t.text for t in texts[:-1]) == part["name"]
        x0, _, x1, _ = boxes[f"part-{part['item_id']}"]
        for t in texts:
            size = float(t.get("font-size"))
            assert size * scale >= 9
            width = text_width(t.text, size, bold=t.get("font-weight") == "bold")
            x = float(t.get("x"))
            left = {"start": x, "middle": x - width / 2, "end": x - width}[
                t.get("text-anchor", "start")]
            assert x0 <= left and left + width <= x1, t.text
    # Every relationship is drawn, by its kind.
    edges = [g.get("id") for g in root.iter(f"{SVG}g") if g.get("class") == "edge"
             and (g.get("id") or "").startswith("rel-")]
    assert sorted(edges) == sorted(f"rel-{j}-{r['kind']}" for j, r in enumerate(rels))
    for kind in ("protects", "polarised", "allied"):
        assert any(e.endswith(kind) for e in edges)
    # The alternative text says what the map shows.
    assert f"{n} parts" in drawn.alt and f"{NAMES[0]} protects" in drawn.alt


def test_map_beyond_a_page_gives_way_to_the_parts_table():
    parts = [{"item_id": f"p{i}", "name": f"The part that carries memory number {i} of the "
              f"long winter", "role": ROLES[i % 4]} for i in range(40)]
    rels = [{"from_part": f"p{i}", "to_part": f"p{(i * 7 + 3) % 40}", "kind": "allied"}
            for i in range(40)]
    assert diagrams.ifs_map(parts, rels) is None


def test_names_are_wrapped_never_cut():
    name = "A" * 70 + " the one who " + "B" * 30
    lines = diagrams.wrap_name(name)
    assert "".join(lines).replace(" ", "") == name.replace(" ", "")
    assert all(len(line) <= 22 for line in lines)
