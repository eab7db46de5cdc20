"""Exports an administrator makes: the de-identified research export (issue 14).

The page shows no clinical content: which templates have signed notes and how many, and
the research exports already made (from the audit trail). The download is the
de-identified data itself, and every one is audited with who, what and why.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template
from flask_login import current_user
from sqlalchemy import select
from wtforms import BooleanField, SelectMultipleField, TextAreaField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from .. import audit
from ..exports.research import build_research_export, signed_note_counts
from ..extensions import db
from ..forms import KapForm
from ..i18n import _l
from ..modality import get_registry
from ..models import AuditEvent, Role

bp = Blueprint("exports", __name__, url_prefix="/admin/exports")


@bp.before_request
def _admins_only():
    if current_user.role != Role.ADMIN:
        abort(404)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class ResearchExportForm(KapForm):
    templates = SelectMultipleField(
        _l("Templates"), [DataRequired(_l("Choose at least one template."))], choices=[],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    free_text = BooleanField(
        _l("Include free text"),
        description=_l("What therapists typed in text boxes. It may name people, places and "
                       "dates, so it is left out unless you tick this."))
    reason = TextAreaField(
        _l("Why is this data leaving kaptools?"),
        [DataRequired(_l("Say why the data is exported; it goes in the audit trail.")),
         Length(max=500)], filters=[_strip],
        description=_l("For example the ethics approval reference and the study, or the "
                       "clinic's own audit it is for."),
        render_kw={"rows": 2, "maxlength": 500})


@bp.route("/research", methods=["GET", "POST"])
def research():
    """Download de-identified research data (a ZIP of CSV files), saying why."""
    counts = signed_note_counts()
    templates = get_registry().current()
    form = ResearchExportForm()
    form.templates.choices = [(t.slug, t.title) for t in templates]
    if form.validate_on_submit():
        export = build_research_export(form.templates.data, free_text=form.free_text.data)
        audit.record("export.research", detail=export.audit_detail(form.reason.data))
        db.session.commit()
        response = Response(export.data, mimetype="application/zip")
        response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response
    earlier = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "export.research")
                                 .order_by(AuditEvent.id.desc()).limit(10)).all()
    return render_template("admin/research_export.html", form=form, templates=templates,
                           counts=counts, earlier=earlier), \
        422 if form.is_submitted() else 200
