"""Answers: validation beyond single fields, normalisation, round-trips and scores.

Answers are JSON keyed by field key: ints as ints, decimals as floats rounded to
the field's places, dates ISO, times HH:MM, yes/no as booleans, choices as their
values, repeating groups as lists of items that each carry a stable ``item_id``.
Empty answers are left out.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

from flask_babel.speaklater import LazyString
from werkzeug.datastructures import MultiDict

from ..i18n import _
from ..timeutil import day
from .forms import ITEM_ID_RE, NoteForm, form_class, new_item_id
from .schema import GROUP_HARD_MAX, Field, Score, Template

Answers = dict[str, Any]


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _normalise(f: Field, data: Any) -> Any:
    if data is None:
        return None
    if f.type in ("text", "longtext"):
        text = data.replace("\r\n", "\n").replace("\r", "\n").strip()
        return text or None
    if f.type == "decimal":
        quantum = decimal.Decimal(1).scaleb(-f.places)
        return float(data.quantize(quantum, rounding=decimal.ROUND_HALF_EVEN))
    if f.type == "yesno":
        return data == "yes"
    if f.type == "date":
        return data.isoformat()
    if f.type == "time":
        return data.strftime("%H:%M")
    if f.type == "multichoice":
        chosen = set(data or ())
        return [c.value for c in f.choices if c.value in chosen] or None
    return data


# ---------------------------------------------------------------------------
# Collecting answers from a validated form.


def _collect_level(fields: tuple[Field, ...], form: Any) -> Answers:
    values: Answers = {}
    for f in fields:
        wt = form[f.key]
        if f.type == "group":
            items = []
            for entry in wt.entries:
                sub = entry.form
                item = _collect_level(f.fields, sub)
                if not item:
                    continue  # a blank row (e.g. the spare row shown without JavaScript)
                item_id = sub.item_id.data if ITEM_ID_RE.match(sub.item_id.data or "") else None
                if item_id is None:
                    item_id = new_item_id()
                    sub.item_id.data = item_id
                items.append({"item_id": item_id, **item})
            if items:
                values[f.key] = items
        else:
            value = _normalise(f, wt.data)
            if not _empty(value):
                values[f.key] = value
    # Answers to fields that are not shown do not apply and are not kept.
    return {k: val for k, val in values.items() if _visible(fields, k, values)}


def _visible(fields: tuple[Field, ...], key: str, values: Answers) -> bool:
    f = next(x for x in fields if x.key == key)
    return f.show_if is None or f.show_if.holds(values)


def collect(form: NoteForm) -> tuple[Answers, Answers]:
    """Split the form's answers into record content and private (author-only) content."""
    every = _collect_level(form.template.fields, form)
    private_keys = {f.key for f in form.template.fields if f.audience == "private"}
    record = {k: val for k, val in every.items() if k not in private_keys}
    private = {k: val for k, val in every.items() if k in private_keys}
    return record, private


# ---------------------------------------------------------------------------
# Validation across fields: required-when-visible, counts, references.


def validate_note(form: NoteForm, complete: bool = True) -> bool:
    """Run field validation, then the template's cross-field rules. True when clean.

    ``complete=False`` (saving a draft) skips the checks for missing answers and
    too few rows; everything typed must still be valid.
    """
    form.group_errors = {}
    form.validate()
    for name, count in getattr(form, "rows_dropped", {}).items():
        group = _group_named(form.template, name)
        form.group_errors.setdefault(name, []).append(
            _("At most %(max)s are allowed; %(count)s more rows were sent than can be shown "
              "here and were not kept.", max=group.max_items, count=count) if group else
            _("%(count)s rows were sent beyond what this note can hold and were not kept.",
              count=count))
    answers = _collect_level(form.template.fields, form)
    _check_level(form, form.template.fields, form, answers, answers, complete=complete)
    return not has_errors(form)


def _check_level(root: NoteForm, fields: tuple[Field, ...], form: Any, values: Answers,
                 top: Answers, enclosing: Answers | None = None,
                 complete: bool = True) -> None:
    scope = {**(enclosing or {}), **values}
    for f in fields:
        wt = form[f.key]
        visible = f.show_if is None or f.show_if.holds(values)
        if not visible:
            _clear_errors(wt)
            continue
        if f.type == "group":
            items = values.get(f.key, [])
            count = len(items)
            problems = []
            if complete and f.required and count == 0:
                problems.append(_("Add at least one %(item)s.", item=f.item_label.lower()))
            if complete and count < f.min_items:
                problems.append(_("Add at least %(min)s (%(count)s so far).", min=f.min_items,
                                  count=count))
            if count > f.max_items:
                problems.append(_("At most %(max)s are allowed; remove %(extra)s.",
                                  max=f.max_items, extra=count - f.max_items))
            if problems:
                root.group_errors.setdefault(wt.name, []).extend(problems)
            filled = [e for e in wt.entries if _collect_level(f.fields, e.form)]
            for entry, item in zip(filled, items, strict=False):
                _check_level(root, f.fields, entry.form, item, top, scope, complete)
            continue
        answered = f.key in values
        if complete and f.required and not answered and not wt.errors:
            wt.errors = list(wt.errors) + [_("Please answer this.")]
        if f.type == "ref" and answered:
            targets = _group_ids(scope.get(f.group)) | _group_ids(top.get(f.group))
            if values[f.key] not in targets:
                wt.errors = list(wt.errors) + [_("Choose one of the items listed (it may "
                                                 "have been removed).")]
        if f.type == "multichoice" and f.max_selected and len(values.get(f.key, [])) > \
                f.max_selected:
            wt.errors = list(wt.errors) + [_("Choose at most %(max)s.", max=f.max_selected)]
        if answered and f.type in ("choice", "multichoice") and f.choices:
            wt.errors = list(wt.errors) + _unfit_choices(f, values, fields, top, scope)


def choice_fits(choice, values: Answers, top: Answers, enclosing: Answers | None = None
                ) -> bool:
    """Whether an option's ``only_if`` conditions hold: each names a field at the same level
    (``values``) or, as "ref.field", a field of the row that a reference there points to."""
    for cond in choice.only_if:
        head, _, tail = cond.field.partition(".")
        if not tail:
            if not cond.holds(values):
                return False
            continue
        target = values.get(head)
        row = next((r for rows in _all_rows(top, enclosing) for r in rows
                    if isinstance(r, dict) and r.get("item_id") == target), None)
        # Nothing to check against until the reference is chosen (a required reference
        # says so itself when the note is signed).
        if row is not None and not cond.holds({cond.field: row.get(tail)}):
            return False
    return True


def _all_rows(top: Answers, enclosing: Answers | None):
    for source in (enclosing or {}, top):
        for value in source.values():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                yield value


def _unfit_choices(f: Field, values: Answers, siblings: tuple[Field, ...], top: Answers,
                   enclosing: Answers | None) -> list[str]:
    """Messages for chosen options whose conditions on other answers do not hold (a route
    that does not go with the formulation chosen, an exile said to be polarised)."""
    chosen = values.get(f.key)
    chosen = chosen if isinstance(chosen, list) else [chosen]
    problems = []
    for choice in f.choices:
        if choice.value in chosen and not choice_fits(choice, values, top, enclosing):
            names = []
            for cond in choice.only_if:
                head, _dot, tail = cond.field.partition(".")
                other = next((s for s in siblings if s.key == head), None)
                label = other.label if other else head
                names.append(
                    _("“%(label)s” (%(detail)s)", label=label, detail=tail.replace("_", " "))
                    if tail else _("“%(label)s”", label=label))
            listed = list(dict.fromkeys(names))
            together = listed[0]
            for name in listed[1:]:
                together = _("%(earlier)s and %(next)s", earlier=together, next=name)
            problems.append(_("“%(choice)s” does not go with the answer to %(fields)s: change "
                              "one of them.", choice=choice.label, fields=together))
    return problems


def _group_named(template: Template, name: str) -> Field | None:
    """The group field behind a posted name such as ``parts`` or ``targets-0-sets``."""
    parts = name.split("-")
    fields, found = template.fields, None
    for key in parts[::2]:
        found = next((f for f in fields if f.key == key), None)
        if found is None:
            return None
        fields = found.fields
    return found


def _group_ids(items: Any) -> set[str]:
    if not isinstance(items, list):
        return set()
    return {item.get("item_id") for item in items if isinstance(item, dict)}


def _clear_errors(wt: Any) -> None:
    if hasattr(wt, "entries"):
        for entry in wt.entries:
            for sub in entry.form:
                _clear_errors(sub)
    else:
        wt.errors = []


def has_errors(form: Any) -> bool:
    if getattr(form, "group_errors", None):
        return True
    return bool(list(iter_errors(form)))


def iter_errors(form: Any, prefix: str = ""):
    """Yield (path, message) for every error in a (nested) note form."""
    for name, messages in (getattr(form, "group_errors", None) or {}).items():
        for message in messages:
            yield name, message
    for wt in form:
        if wt.name in ("item_id",) or wt.short_name == "item_id":
            continue
        if hasattr(wt, "entries"):
            for i, entry in enumerate(wt.entries):
                for path, message in iter_errors(entry.form, f"{prefix}{wt.short_name}[{i}]."):
                    yield path, message
        else:
            for message in wt.errors if isinstance(wt.errors, list) else []:
                if isinstance(message, LazyString):
                    message = str(message)  # a validator's lazily translated message
                if isinstance(message, str):
                    yield f"{prefix}{wt.short_name}", message


# ---------------------------------------------------------------------------
# Bounding posted data by the template, before any form is built.
#
# A browser can post anything: ten thousand rows of a group, row numbers in the
# billions, a field repeated a million times, names no template has. Only what the
# template can hold is kept, so building and checking a form costs no more than the
# template allows, whatever the encoding of the request.

_Tree = dict[str, Any]
ROWS_OVER_LIMIT_KEPT = 5


def bound_formdata(template: Template, formdata: Any) -> tuple[MultiDict, dict[str, int]]:
    """Keep the posted values the template can hold; count rows over a group's limit.

    Returns the kept data, with each group's non-blank rows numbered 0, 1, 2... in their
    posted order, and {group field name: rows not kept} for groups sent too many rows.
    """
    tree: _Tree = {}
    items = formdata.items(multi=True) if hasattr(formdata, "items") else formdata
    for key, value in items:
        if isinstance(key, str) and isinstance(value, str) and len(key) <= 400:
            _place(template.fields, key.split("-"), value, tree)
    out: MultiDict = MultiDict()
    dropped: dict[str, int] = {}
    _emit(template.fields, tree, "", out, dropped)
    return out, dropped


def bounded_pairs(template: Template, formdata: Any) -> list[tuple[str, str]]:
    """The posted pairs a template can hold, in order (for keeping an editor's state)."""
    return list(bound_formdata(template, formdata)[0].items(multi=True))


def _field_map(fields: tuple[Field, ...]) -> dict[str, Field]:
    return {f.key: f for f in fields}


def _place(fields: tuple[Field, ...], parts: list[str], value: str, tree: _Tree) -> None:
    by_key = _field_map(fields)
    name = parts[0]
    f = by_key.get(name)
    if f is None:
        if name == "item_id" and len(parts) == 1:
            tree.setdefault("item_id", value)
        return
    if f.type == "group":
        if len(parts) < 3 or not parts[1].isdigit() or len(parts[1]) > 12:
            return
        rows = tree.setdefault(name, {})
        index = int(parts[1])
        if index not in rows and len(rows) > 4 * GROUP_HARD_MAX:
            return  # far past any group's limit: counted no further
        _place(f.fields, parts[2:], value, rows.setdefault(index, {}))
        return
    if len(parts) != 1:
        return
    values = tree.setdefault(name, [])
    limit = max(1, len(f.choices)) if f.type == "multichoice" else 1
    if len(values) < limit and (f.type != "multichoice" or value not in values):
        values.append(value)


def _blank(fields: tuple[Field, ...], row: _Tree) -> bool:
    by_key = _field_map(fields)
    for key, value in row.items():
        f = by_key.get(key)
        if f is None:
            continue  # item_id alone does not make a row
        if f.type == "group":
            if any(not _blank(f.fields, sub) for sub in value.values()):
                return False
        elif any(v.strip() for v in value):
            return False
    return True


def _emit(fields: tuple[Field, ...], tree: _Tree, prefix: str, out: MultiDict,
          dropped: dict[str, int]) -> None:
    if "item_id" in tree:
        out.add(prefix + "item_id", tree["item_id"])
    for f in fields:
        if f.key not in tree:
            continue
        name = prefix + f.key
        if f.type != "group":
            for value in tree[f.key]:
                out.add(name, value)
            continue
        rows = [tree[f.key][i] for i in sorted(tree[f.key])]
        filled = [row for row in rows if not _blank(f.fields, row)]
        # A few rows over the limit stay in the form, to be removed by the therapist;
        # beyond that (a crafted request) they are not kept at all.
        keep = f.max_items + ROWS_OVER_LIMIT_KEPT
        if len(filled) > keep:
            dropped[name] = len(filled) - keep
            filled = filled[:keep]
        for i, row in enumerate(filled):
            _emit(f.fields, row, f"{name}-{i}-", out, dropped)


# ---------------------------------------------------------------------------
# Answers back to form data (to fill the editor, and to prove round-trips).


def _format(f: Field, value: Any) -> str:
    if f.type == "yesno":
        return "yes" if value else "no"
    if f.type == "decimal" and isinstance(value, int | float):
        return f"{value:.{f.places}f}"
    return str(value)


def _formdata_level(fields: tuple[Field, ...], answers: Answers, prefix: str,
                    out: MultiDict) -> None:
    for f in fields:
        if f.key not in answers:
            continue
        value = answers[f.key]
        name = prefix + f.key
        if f.type == "group":
            for i, item in enumerate(value if isinstance(value, list) else []):
                if not isinstance(item, dict):
                    continue
                item_prefix = f"{name}-{i}-"
                out.add(item_prefix + "item_id", str(item.get("item_id", "")))
                _formdata_level(f.fields, item, item_prefix, out)
        elif f.type == "multichoice" and isinstance(value, list):
            for choice in value:
                out.add(name, str(choice))
        else:
            out.add(name, _format(f, value))


def answers_to_formdata(template: Template, answers: Answers) -> MultiDict:
    out: MultiDict = MultiDict()
    _formdata_level(template.fields, answers, "", out)
    return out


def build_form(template: Template, formdata: Any = None,
               answers: Answers | None = None) -> NoteForm:
    """A form for this template, from posted data or from stored answers.

    Posted data is first bounded by the template (see ``bound_formdata``); rows a group
    cannot hold are reported by ``validate_note``.
    """
    if formdata is None:
        formdata = answers_to_formdata(template, answers or {})
    kept, dropped = bound_formdata(template, formdata)
    form = form_class(template)(formdata=kept)
    form.group_errors = {}
    form.rows_dropped = dropped
    set_ref_choices(form)
    return form


def set_ref_choices(form: NoteForm) -> None:
    """Offer each reference field the items of its group, by their titles."""
    template = form.template
    top_groups = {f.key: f for f in template.fields if f.type == "group"}

    def titles(group: Field, wt_group) -> list:
        from wtforms import SelectChoice

        out = [SelectChoice("", _("— choose —"))]
        for i, entry in enumerate(wt_group.entries):
            item_id = entry.form.item_id.data
            if not item_id:
                continue
            title = entry.form[group.item_title].data if group.item_title else None
            out.append(SelectChoice(item_id, str(title or _("%(item)s %(number)s",
                                                           item=group.item_label,
                                                           number=i + 1))))
        return out

    def walk(fields, wt_form, groups):
        here = dict(groups)
        here.update({f.key: (f, wt_form[f.key]) for f in fields if f.type == "group"})
        for f in fields:
            if f.type == "ref" and f.group in here:
                wt_form[f.key].choices = titles(*here[f.group])
            elif f.type == "group":
                for entry in wt_form[f.key].entries:
                    walk(f.fields, entry.form, here)
                if (blank := getattr(wt_form[f.key], "blank_row", None)) is not None:
                    walk(f.fields, blank, here)

    walk(template.fields, form, {k: (g, form[k]) for k, g in top_groups.items()})


def add_blank_rows(form: NoteForm) -> None:
    """Append one empty row to every group below its maximum (for editing without JS)."""

    def walk(fields, wt_form):
        for f in fields:
            if f.type != "group":
                continue
            wt = wt_form[f.key]
            for entry in wt.entries:
                walk(f.fields, entry.form)
            if len(wt.entries) < f.max_items:
                wt.append_entry()
                walk(f.fields, wt.entries[-1].form)

    walk(form.template.fields, form)
    set_ref_choices(form)


ROW_PLACEHOLDER = "__row{depth}__"


def prepare_editor(form: NoteForm) -> None:
    """Ready a form for the editor page: a spare blank row in each group (for editing
    without JavaScript) and, per group, a blank row to copy when a row is added.

    New rows are always made from that server-rendered blank row, never by copying a
    filled one, so adding a row can never touch the answers of another.
    """
    add_blank_rows(form)

    def walk(fields, wt_form, depth: int) -> None:
        for f in fields:
            if f.type != "group":
                continue
            wt = wt_form[f.key]
            for entry in wt.entries:
                walk(f.fields, entry.form, depth + 1)
            placeholder = ROW_PLACEHOLDER.format(depth=depth)
            item_class = wt.unbound_field.args[0]
            blank = item_class(formdata=None, prefix=f"{wt.name}-{placeholder}-")
            walk(f.fields, blank, depth + 1)
            wt.blank_row = blank
            wt.row_placeholder = placeholder

    walk(form.template.fields, form, 0)
    set_ref_choices(form)


def carried_answers(fields: tuple[Field, ...], answers: Answers) -> Answers:
    """What "Start from …" copies into a new note: no measurement, vital, item answer,
    event time or log (fields whose ``carried`` is false), at any depth."""
    out: Answers = {}
    for f in fields:
        if f.key not in answers or not f.carried:
            continue
        if f.type == "group":
            rows = [{"item_id": row.get("item_id"), **carried_answers(f.fields, row)}
                    for row in answers[f.key] if isinstance(row, dict)]
            rows = [row for row in rows if len(row) > 1]
            if rows:
                out[f.key] = rows
        else:
            out[f.key] = answers[f.key]
    return out


def validate_answers(template: Template, answers: Answers) -> list[tuple[str, str]]:
    """Check stored or sample answers against a template; list (path, message)."""
    form = build_form(template, answers=answers)
    validate_note(form)
    return list(iter_errors(form))


def round_trip(template: Template, answers: Answers, complete: bool = True) -> Answers:
    """answers → form data → form → answers (with private content merged back).

    ``complete=False`` checks them as a draft (missing answers allowed).
    """
    form = build_form(template, answers=answers)
    if not validate_note(form, complete=complete):
        raise ValueError(list(iter_errors(form)))
    record, private = collect(form)
    return {**record, **private}


# ---------------------------------------------------------------------------
# Computed scores: always derived from answers, never typed.


@dataclass(frozen=True)
class ScoreResult:
    key: str
    label: str
    total: int | None
    max_total: int
    answered: int
    items: int
    band: str | None
    flags: tuple[str, ...]
    risk: bool = False  # a flag or level that raises the client's risk flag
    is_levels: bool = False  # a triage level or a criteria rule (band), not a total
    detail: str = ""  # how a criteria rule was reached, criterion by criterion

    @property
    def complete(self) -> bool:
        return self.band is not None if self.is_levels else self.total is not None


def compute_scores(template: Template, answers: Answers,
                   only: str | None = None) -> list[ScoreResult]:
    """The template's scores of ``answers`` (only the one keyed ``only``, when given)."""
    return [_score(score, answers if isinstance(answers, dict) else {})
            for score in template.scores if only is None or score.key == only]


def _holds(condition, answers: Answers) -> bool:
    val = answers.get(condition.field)
    if condition.op == "gt":
        return isinstance(val, int | float) and not isinstance(val, bool) and \
            val > condition.value
    return val == condition.value


def _score(score: Score, answers: Answers) -> ScoreResult:
    if score.is_criteria:
        values = {k: answers.get(k) for k in score.items}
        answered = sum(1 for v in values.values()
                       if isinstance(v, int) and not isinstance(v, bool))
        band, detail = None, ""
        if answered == len(values):
            results = [(cr, sum(1 for k in cr.items if values[k] >= cr.rated_at_least))
                       for cr in score.criteria]
            band = score.met if all(n >= cr.count for cr, n in results) else score.not_met
            detail = "; ".join(_("%(criterion)s: %(count)s of %(needed)s needed %(mark)s",
                                 criterion=cr.label, count=n, needed=cr.count,
                                 mark="✓" if n >= cr.count else "✗") for cr, n in results)
        return ScoreResult(score.key, score.label, None, 0, answered, len(values), band, (),
                           is_levels=True, detail=detail)
    if score.is_levels:
        answered = sum(1 for k in score.requires if answers.get(k) is not None)
        band, risk = None, False
        if answered == len(score.requires):
            level = next((lv for lv in score.levels
                          if any(_holds(cond, answers) for cond in lv.any)), None)
            band = level.label if level else (score.otherwise or None)
            risk = bool(level and level.risk)
        return ScoreResult(score.key, score.label, None, 0, answered, len(score.requires),
                           band, (band,) if risk else (), risk=risk, is_levels=True)
    values = [answers.get(k) for k in score.items]
    given = [val for val in values if isinstance(val, int) and not isinstance(val, bool)]
    total = sum(given) if len(given) == len(values) else None
    band = None
    if total is not None:
        band = next((b.label for b in score.bands if b.min <= total <= b.max), None)
    raised = [flag for flag in score.flags if _holds(flag, answers)]
    return ScoreResult(score.key, score.label, total, score.max_total, len(given),
                       len(values), band, tuple(flag.label for flag in raised),
                       risk=any(flag.risk for flag in raised))


def as_date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Display helpers for read-only views and print.


def ref_titles(template: Template, answers: Answers) -> dict[str, str]:
    """item_id → a readable title, for every item of every group."""
    titles: dict[str, str] = {}

    def walk(fields: tuple[Field, ...], values: Answers) -> None:
        if not isinstance(values, dict):
            return
        for f in fields:
            if f.type != "group" or not isinstance(values.get(f.key), list | None):
                continue
            for i, item in enumerate(values.get(f.key) or []):
                if not isinstance(item, dict):
                    continue
                title = item.get(f.item_title) if f.item_title else None
                titles[str(item.get("item_id"))] = str(title or _("%(item)s %(number)s",
                                                                  item=f.item_label,
                                                                  number=i + 1))
                walk(f.fields, item)

    walk(template.fields, answers)
    return titles


def display_value(f: Field, value: Any, refs: dict[str, str] | None = None) -> str:
    """A plain-text rendering of one stored answer (not for groups or long text)."""
    if value is None or value == "" or value == []:
        return ""
    if f.type == "scale" and f.scale:
        anchor = dict(f.scale.anchors).get(value)
        return f"{value}\u00a0/\u00a0{f.scale.max}" + (f" · {anchor}" if anchor else "")
    if f.type == "percent":
        return f"{value}\u00a0%"  # a number never wraps away from its unit
    if f.type == "yesno":
        return _("Yes") if value else _("No")
    if f.type == "choice":
        return f.choice_label(value)
    if f.type == "multichoice":
        return ", ".join(f.choice_label(v) for v in value)
    if f.type == "ref":
        return (refs or {}).get(value, _("(removed item)"))
    if f.type == "date":
        parsed = as_date(value)
        return day(parsed, "dd MMM y") if parsed else str(value)
    if f.type == "decimal":
        return f"{value:g}" + (f"\u00a0{f.unit}" if f.unit else "")
    if f.type in ("integer", "duration"):
        return f"{value}" + (f"\u00a0{f.unit}" if f.unit else "")
    return str(value)


def plain_answers(template: Template | None, answers: Any) -> list[tuple[str, str]]:
    """Answers as (label, text) lines using nothing but ``str``: what a note shows when it
    cannot be laid out as usual (data no template expects). Never fails."""
    fields = {f.key: f for f in template.fields} if template is not None else {}
    lines: list[tuple[str, str]] = []

    def text(value: Any) -> str:
        if isinstance(value, dict):
            return "; ".join(f"{k}: {text(v)}" for k, v in value.items() if k != "item_id")
        if isinstance(value, list):
            return " | ".join(text(v) for v in value)
        return str(value)

    if not isinstance(answers, dict):
        return [(_("Content"), text(answers))]
    for key, value in answers.items():
        f = fields.get(key)
        lines.append((f.label if f is not None else str(key), text(value)))
    return lines
