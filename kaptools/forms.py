"""WTForms for accounts and the record's scaffolding (clients, courses, sessions)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Length,
    Optional,
    Regexp,
    StopValidation,
    ValidationError,
)

from .i18n import _, _l
from .models import CourseFormat, ReviewMode, Role, SessionKind
from .textcheck import text_problem
from .widgets import FastRendering

FORMAT_LABELS = {
    CourseFormat.INTENSIVE: _l("Intensive retreat"),
    CourseFormat.WEEKLY: _l("Weekly"),
    CourseFormat.BIWEEKLY: _l("Every two weeks"),
}
KIND_LABELS = {
    SessionKind.PREPARATION: _l("Preparation"),
    SessionKind.DOSING: _l("Dosing (medicine session)"),
    SessionKind.INTEGRATION: _l("Integration"),
    SessionKind.ASSESSMENT: _l("Assessment"),
}
ROLE_LABELS = {
    Role.THERAPIST: _l("Therapist"),
    Role.SUPERVISOR: _l("Supervisor"),
    Role.ADMIN: _l("Administrator"),
}
REVIEW_MODE_LABELS = {
    ReviewMode.APPROVE_BEFORE_SIGNING: _l("Approve before signing (trainee)"),
    ReviewMode.COSIGN_AFTER_SIGNING: _l("Co-sign after signing"),
}


def clean_text(identifier: bool = False, multiline: bool = False):
    def _check(form, field) -> None:
        if field.data and (problem := text_problem(field.data, identifier=identifier,
                                                  multiline=multiline)):
            raise ValidationError(problem)

    return _check


def _no_control_characters(form, field) -> None:
    """NUL, lone surrogates and other control characters get a message at the field."""
    multiline = isinstance(field, TextAreaField)
    for raw in field.raw_data or ():
        if isinstance(raw, str) and raw and (problem := text_problem(raw,
                                                                     multiline=multiline)):
            field.errors = []  # a parse message ("Not a valid date") would only confuse
            raise StopValidation(problem)


class KapForm(FlaskForm):
    """Every form of the app: each input refuses control characters by itself, and its
    controls are written by kaptools.widgets (WTForms' markup, without its cost)."""

    class Meta(FastRendering):
        def bind_field(self, form, unbound_field, options):
            bound = unbound_field.bind(form=form, **options)
            bound.validators = [_no_control_characters, *bound.validators]
            return bound


class FilterForm(KapForm):
    """A search form read from the query string (GET: no CSRF token, nothing changes)."""

    class Meta:
        csrf = False


def choice_list(pairs) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class LoginForm(KapForm):
    username = StringField(_l("Username"), [DataRequired(), Length(max=64)], filters=[_strip])
    password = PasswordField(_l("Password"), [DataRequired(), Length(max=256)])


class PasswordChangeForm(KapForm):
    current = PasswordField(_l("Current password"), [DataRequired(), Length(max=256)])
    new = PasswordField(_l("New password"), [DataRequired(), Length(min=12, max=256)],
                        description=_l("At least 12 characters. A short sentence works well."))
    confirm = PasswordField(_l("New password again"), [DataRequired(), Length(max=256)])

    def validate_confirm(self, field) -> None:
        if field.data != self.new.data:
            raise ValidationError(_("The two new passwords differ."))


class CodeForm(KapForm):
    """A six-digit code from the authenticator app, or a recovery code."""

    code = StringField(_l("Code"), [DataRequired(_l("Enter the code your app shows.")),
                                    Length(max=32)],
                       filters=[_strip],
                       description=_l("The six digits your authenticator app shows now, or "
                                      "one of your recovery codes."),
                       # The one thing this page asks for: the cursor is there already.
                       render_kw={"autocomplete": "one-time-code", "autocapitalize": "off",
                                  "spellcheck": "false", "autofocus": True})


class EnrolForm(KapForm):
    code = StringField(_l("Code from the app"), [DataRequired(_l("Enter the code your app "
                                                                 "shows.")),
                                                 Length(max=32)],
                       filters=[_strip],
                       description=_l("After adding kaptools to the app, type the six digits "
                                      "it shows."),
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class TwoFactorOffForm(KapForm):
    password = PasswordField(_l("Your password"), [DataRequired(), Length(max=256)])


class TimeZoneForm(KapForm):
    time_zone = SelectField(_l("Your time zone"), validate_choice=True,
                            description=_l("Pages show dates and times, and “today”, in this "
                                           "zone. Printed documents keep the clinic's."))


class RecordExportForm(KapForm):
    reason = TextAreaField(_l("Why is the record leaving kaptools?"),
                           [DataRequired(_l("Say why the record is exported; it goes in the "
                                            "audit trail.")), Length(max=500)],
                           filters=[_strip],
                           description=_l("For example: the client asked for a copy of their "
                                          "record; moving to another clinic's system."),
                           render_kw={"rows": 2, "maxlength": 500})


class RolePolicyForm(KapForm):
    therapist = BooleanField(_l("Therapists"))
    supervisor = BooleanField(_l("Supervisors"))
    admin = BooleanField(_l("Administrators"))


class ClientForm(KapForm):
    code = StringField(
        _l("Client code"),
        [DataRequired(), Length(min=2, max=32),
         Regexp(r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
                message=_l("Use letters, digits, dashes or underscores, starting with a "
                           "letter or digit.")),
         clean_text(identifier=True)],
        filters=[_strip],
        description=_l("A pseudonymous code such as KT-0142. Never the client's name."),
    )
    display_name = StringField(
        _l("Display name (optional)"),
        [Optional(), Length(max=120), clean_text(identifier=True)],
        filters=[_strip],
        description=_l("Shown only to you and your supervisor; leave empty to use the code "
                       "alone."),
    )
    archived = BooleanField(_l("Archived"))


class CourseForm(KapForm):
    title = StringField(_l("Title"), [DataRequired(), Length(max=120), clean_text()],
                        filters=[_strip],
                        description=_l("For example: Spring intensive, or Weekly course 2."))
    format = SelectField(_l("Format"),
                         choices=choice_list((k.value, v) for k, v in FORMAT_LABELS.items()))
    starts_on = DateField(_l("First day"), [DataRequired(message=_l("Enter the first day."))])
    ends_on = DateField(_l("Last day (optional)"), [Optional()])
    intentions = TextAreaField(
        _l("Intentions"),
        [Optional(), Length(max=4000), clean_text(multiline=True)],
        description=_l("What the client hopes to work on in this course, in their words if "
                       "possible."),
    )

    def validate_ends_on(self, field) -> None:
        if field.data and self.starts_on.data and field.data < self.starts_on.data:
            raise ValidationError(_("The last day cannot come before the first day."))


class SessionForm(KapForm):
    kind = SelectField(_l("Kind"),
                       choices=choice_list((k.value, v) for k, v in KIND_LABELS.items()))
    session_date = DateField(_l("Date"), [DataRequired(message=_l("Enter the session date."))])
    follows_id = SelectField(_l("Follows dosing session"), coerce=int, choices=[],
                             description=_l("An integration session names the dosing session "
                                            "it follows."))
    summary = StringField(_l("Short description (optional)"),
                          [Optional(), Length(max=200), clean_text()], filters=[_strip])

    def validate_follows_id(self, field) -> None:
        if self.kind.data == SessionKind.INTEGRATION and not field.data:
            raise ValidationError(_("Choose the dosing session this integration follows."))


class UserForm(KapForm):
    username = StringField(
        _l("Username"),
        [DataRequired(), Length(min=3, max=64),
         Regexp(r"^[a-z0-9][a-z0-9._-]*$", message=_l("Use lower-case letters, digits, dots, "
                                                      "dashes or underscores."))],
        filters=[lambda v: v.strip().lower() if isinstance(v, str) else v],
    )
    display_name = StringField(_l("Full name"), [DataRequired(), Length(max=120),
                                                 clean_text(identifier=True)], filters=[_strip])
    role = SelectField(_l("Role"),
                       choices=choice_list((k.value, v) for k, v in ROLE_LABELS.items()))
    password = PasswordField(_l("Password"), [Optional(), Length(min=12, max=256)],
                             description=_l("At least 12 characters. Leave empty to keep the "
                                            "current password."))
    active = BooleanField(_l("Account active"), default=True)


class SupervisionForm(KapForm):
    supervisor_id = SelectField(_l("Supervisor"), coerce=int)
    supervisee_id = SelectField(_l("Supervisee"), coerce=int)
    starts_on = DateField(_l("Starts"), [DataRequired(message=_l("Enter the start date."))])
    ends_on = DateField(_l("Ends (optional)"), [Optional()])
    review_mode = SelectField(_l("Review mode"),
                              choices=choice_list(
                                  (k.value, v) for k, v in REVIEW_MODE_LABELS.items()))

    def validate_supervisee_id(self, field) -> None:
        if field.data == self.supervisor_id.data:
            raise ValidationError(_("Someone cannot supervise themselves."))

    def validate_ends_on(self, field) -> None:
        if field.data and self.starts_on.data and field.data < self.starts_on.data:
            raise ValidationError(_("The end cannot come before the start."))


class EndSupervisionForm(KapForm):
    ends_on = DateField(_l("Ends on"), [DataRequired(message=_l("Enter the end date."))])


class AuditFilterForm(FilterForm):
    user = StringField(_l("User"), [Optional(), Length(max=64)], filters=[_strip])
    client = StringField(_l("Client code"), [Optional(), Length(max=32)], filters=[_strip])
    action = StringField(_l("Action"), [Optional(), Length(max=48)], filters=[_strip])
    since = DateField(_l("From"), [Optional()])
    until = DateField(_l("To"), [Optional()])


class ReviewFilterForm(FilterForm):
    """Filters of the review queue; an empty choice means "all"."""

    supervisee = SelectField(_l("Supervisee"), choices=[], default="")
    status = SelectField(_l("Status"), choices=[], default="")
    since = DateField(_l("Submitted from"), [Optional()])
    until = DateField(_l("to"), [Optional()])


class AddendumForm(KapForm):
    body = TextAreaField(_l("Addendum"), [DataRequired(message=_l("Write the addendum first.")),
                                          Length(max=10000)],
                         description=_l("Signed and dated with your name when added. It "
                                        "cannot be changed afterwards."), id="addendum-body",
                         render_kw={"rows": 4, "maxlength": 10000})


class EnteredInErrorForm(KapForm):
    reason = StringField(_l("Reason"), [DataRequired(message=_l("Give a reason.")),
                                        Length(max=2000)],
                         filters=[_strip], id="error-reason", render_kw={"maxlength": 2000})


class CommentForm(KapForm):
    body = TextAreaField(_l("Comment"), [DataRequired(message=_l("Write a comment first.")),
                                         Length(max=4000)])
    field_key = StringField(_l("Field"), [Optional(), Length(max=200)])
