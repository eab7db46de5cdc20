"""Page numbers ("Page x of y") composed from glyphs laid out once.

Every page of an assembled document has its number laid over it, and the numbers can
only be made once the page count is known, after every part. Laying each one out is
the cost of a small page (milliseconds each, on the critical path of every render); yet
one page's label differs from the next only in its digits. So a sample is laid out once
(print/overlay.html, beside the parts; it depends only on the words and the stylesheet,
so it is stored and reused): a few labels in the same margin box, font and colour, with
every digit in both places. Each page's label is then written with the sample's glyphs:
the words as they were laid out, the digits with their laid-out advances, ending on the
same right edge.

Only what the sample proves exact is composed: the label is one run of glyphs, one for
each character; each word and digit has the same glyphs and advances wherever it occurs;
every sample ends on the same edge. Anything else (a translation whose letters join or
run right to left, a label that wraps, more digits than sampled) raises
``NotComposable``, and the numbers are laid out page by page instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal

import pikepdf
from pikepdf import Array, Name, Pdf

from ..i18n import N_, translated_pieces

MESSAGE = N_("Page %(page)s of %(total)s")
# Labels laid out in the sample: each digit in the page number and in the total, labels
# of different lengths (the right edge must come out the same), none longer than the
# longest label composed (MAX_DIGITS digits each: RENDER_MAX_PAGES is below 10,000).
SAMPLES = (("0123", "4567"), ("4567", "8901"), ("8901", "2345"), ("6", "78"))
MAX_DIGITS = 4
# What may appear in the sample's drawing besides one positioned run of glyphs.
_TEXT_STATE = {"Tc", "Tw", "Tz", "TL", "Ts", "Tr", "Td", "TD", "T*", "'", '"', "Tj"}
_EDGE_TOLERANCE = 0.01  # text-space units (1/100 of a point at most)


class NotComposable(ValueError):
    """The sample does not prove that composed labels would be exact."""


def label_pieces() -> list[str]:
    """The label's translated words and placeholders, alternating: [words, "page" or
    "total", words, ...]. A translation with another placeholder (a typo) is not used
    (English instead), as for the running feet (``i18n.translated_pieces``)."""
    pieces = translated_pieces(MESSAGE, ("page", "total"))
    return [p if i % 2 else p.replace("%%", "%") for i, p in enumerate(pieces)]


def label(page: int | str, total: int | str) -> str:
    values = {"page": str(page), "total": str(total)}
    pieces = label_pieces()
    return "".join(values[p] if i % 2 else p for i, p in enumerate(pieces))


def labels(first: int, last: int, total: int) -> list[str]:
    return [label(n, total) for n in range(first, last + 1)]


def sample_labels() -> list[str]:
    return [label(page, total) for page, total in SAMPLES]


@dataclass(frozen=True)
class _Glyph:
    code: bytes
    adjust: object  # the TJ number after the glyph, exactly as laid out (int or Decimal)
    advance: float  # in text space


class Numbers:
    """Page-number overlays composed from a laid-out sample (``from_sample``)."""

    def __init__(self, pdf: Pdf, ops: list, tm: int, tj: int, words: list[list[_Glyph]],
                 order: list[str], digits: dict[str, _Glyph], edge: float,
                 widest: float) -> None:
        self._pdf = pdf  # kept open: the form below refers to it
        self._ops, self._tm, self._tj = ops, tm, tj
        self._words, self._order, self._digits = words, order, digits
        self._edge, self._widest = edge, widest
        self._form = pdf.pages[0].as_form_xobject()
        self._copied: tuple[Pdf, pikepdf.Object] | None = None  # (out, the form there)

    @classmethod
    def from_sample(cls, data: bytes) -> Numbers:
        pdf = Pdf.open(io.BytesIO(data))
        try:
            return cls._read(pdf)
        except NotComposable:
            pdf.close()
            raise
        except Exception as exc:  # anything unexpected in the sample: lay numbers out
            pdf.close()
            raise NotComposable(f"unreadable sample: {exc.__class__.__name__}: {exc}") from exc

    @classmethod
    def _read(cls, pdf: Pdf) -> Numbers:
        texts = sample_labels()
        if len(pdf.pages) != len(texts):
            raise NotComposable(f"{len(pdf.pages)} sample pages for {len(texts)} labels")
        pieces = label_pieces()
        order = pieces[1::2]
        runs = [_Run.read(page) for page in pdf.pages]
        first = runs[0]
        words: list[list[_Glyph]] | None = None
        digits: dict[str, _Glyph] = {}
        edges, widths = [], []
        for run, (page, total), text in zip(runs, SAMPLES, texts, strict=True):
            if run.skeleton != first.skeleton or run.y != first.y or \
                    run.ops[run.tm].operands[:4] != first.ops[first.tm].operands[:4]:
                raise NotComposable("the sample labels are not drawn alike")
            if len(run.glyphs) != len(text):
                raise NotComposable(f"{len(run.glyphs)} glyphs for {len(text)} characters")
            values = {"page": page, "total": total}
            at, these = 0, []
            for i, piece in enumerate(pieces):
                glyphs = run.glyphs[at:at + len(values[piece] if i % 2 else piece)]
                if i % 2:
                    for digit, glyph in zip(values[piece], glyphs, strict=True):
                        if digits.setdefault(digit, glyph) != glyph:
                            raise NotComposable(f"the digit {digit} is not drawn alike")
                else:
                    these.append(glyphs)
                at += len(glyphs)
            if words is None:
                words = these
            elif these != words:
                raise NotComposable("the label's words are not drawn alike")
            widths.append(sum(g.advance for g in run.glyphs))
            edges.append(run.x + widths[-1])
        if sorted(digits) != list("0123456789"):
            raise NotComposable("the sample lacks digits")
        # A TJ number after a glyph is also its kerning with the next glyph, and not every
        # pair of digits (nor every digit after the words) is in the sample: composed
        # labels are only exact where digits and what comes before them are not kerned.
        before = [w[-1] for w in words[:-1] if w]
        if any(abs(float(g.adjust)) >= 1 for g in [*digits.values(), *before]):
            raise NotComposable("the digits are kerned")
        if max(edges) - min(edges) > _EDGE_TOLERANCE:
            raise NotComposable("the sample labels do not end on one edge")
        return cls(pdf, first.ops, first.tm, first.tj, words, order, digits,
                   edge=edges[0], widest=max(widths))

    def covers(self, total: int) -> bool:
        """Whether every label of a document of ``total`` pages can be composed: no more
        digits than sampled, none wider than the widest sample (so none wraps)."""
        if not 0 < total < 10 ** MAX_DIGITS:
            return False
        widest_digit = max(self._digits.values(), key=lambda g: g.advance)
        most = len(str(total)) * len(self._order) * widest_digit.advance
        return sum(g.advance for w in self._words for g in w) + most <= \
            self._widest + _EDGE_TOLERANCE

    def glyphs(self, page: int, total: int) -> list[_Glyph]:
        values = {"page": str(page), "total": str(total)}
        out = list(self._words[0])
        for name, words in zip(self._order, self._words[1:], strict=True):
            out += [self._digits[d] for d in values[name]]
            out += words
        return out

    def overlay(self, out: Pdf, page: int, total: int) -> pikepdf.Stream:
        """The label of page ``page`` of ``total`` as a form to lay over a page of ``out``
        (marked as an artifact; its font and colours shared by every page's)."""
        glyphs = self.glyphs(page, total)
        x = self._edge - sum(g.advance for g in glyphs)
        ops = list(self._ops)
        operands, operator = ops[self._tm]
        ops[self._tm] = pikepdf.ContentStreamInstruction(
            [*operands[:4], Decimal(f"{x:.6f}"), operands[5]], operator)
        run = Array()
        for glyph in glyphs:
            run.append(pikepdf.String(glyph.code))
            run.append(glyph.adjust)
        ops[self._tj] = pikepdf.ContentStreamInstruction([run], pikepdf.Operator("TJ"))
        content = b"/Artifact BMC\n" + pikepdf.unparse_content_stream(ops) + b"\nEMC\n"
        if self._copied is None or self._copied[0] is not out:
            self._copied = (out, out.copy_foreign(self._form))
        form = self._copied[1]
        stream = pikepdf.Stream(out, content)
        for key, value in form.stream_dict.items():
            if key not in ("/Length", "/Filter", "/DecodeParms"):
                stream[key] = value
        return out.make_indirect(stream)

    def close(self) -> None:
        self._copied = None
        self._pdf.close()


@dataclass
class _Run:
    """The one run of glyphs a sample page draws, and the drawing around it."""

    ops: list
    tm: int
    tj: int
    x: float
    y: float
    glyphs: list[_Glyph]
    skeleton: tuple  # the drawing without the run and its position, to compare pages

    @classmethod
    def read(cls, page: pikepdf.Page) -> _Run:
        ops = list(pikepdf.parse_content_stream(page))
        names = [str(op.operator) for op in ops]
        if names.count("BT") != 1 or names.count("Tf") != 1 or names.count("Tm") != 1 \
                or names.count("TJ") != 1 or _TEXT_STATE & set(names):
            raise NotComposable("the label is not one positioned run of glyphs")
        bt, tm, tj, tf = (names.index(name) for name in ("BT", "Tm", "TJ", "Tf"))
        if not (bt < tf < tj and bt < tm < tj):
            raise NotComposable("the run is not set up before it is drawn")
        a, b, c, d, x, y = (float(v) for v in ops[tm].operands)
        if (a, b, c, abs(d)) != (1, 0, 0, 1):
            raise NotComposable("the run is scaled or turned")
        font_name, size = ops[tf].operands
        font = page.Resources.Font[font_name]
        if font.get("/Subtype") != Name.Type0 or font.get("/Encoding") != Name("/Identity-H"):
            raise NotComposable("the label's font is not addressed by two-byte glyph ids")
        widths = _widths(font.DescendantFonts[0])
        run: list[list] = []  # [code, the number after it or None]
        for item in ops[tj].operands[0]:
            if isinstance(item, pikepdf.String):
                raw = bytes(item)
                if len(raw) % 2:
                    raise NotComposable("a glyph string of odd length")
                run += [[raw[i:i + 2], None] for i in range(0, len(raw), 2)]
            elif run and run[-1][1] is None:
                run[-1][1] = item
            else:
                raise NotComposable("the run is moved other than once after a glyph")
        scale = float(size) / 1000
        glyphs = [_Glyph(code, adjust or 0, (widths(int.from_bytes(code, "big")) -
                                             float(adjust or 0)) * scale)
                  for code, adjust in run]
        skeleton = tuple((tuple(str(o) for o in op.operands), str(op.operator))
                         for i, op in enumerate(ops) if i not in (tm, tj))
        return cls(ops, tm, tj, x, y, glyphs, skeleton)


def _widths(cid_font: pikepdf.Dictionary):
    """A CIDFont's glyph widths (its /W array), as a function of the glyph id."""
    default = float(cid_font.get("/DW", 1000))
    table: dict[int, float] = {}
    entries = list(cid_font.get("/W", Array()))
    i = 0
    while i < len(entries):
        start = int(entries[i])
        if isinstance(entries[i + 1], Array):
            for offset, width in enumerate(entries[i + 1]):
                table[start + offset] = float(width)
            i += 2
        else:
            for cid in range(start, int(entries[i + 1]) + 1):
                table[cid] = float(entries[i + 2])
            i += 3
    return lambda cid: table.get(cid, default)
