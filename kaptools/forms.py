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

from .models import CourseFormat, ReviewMode, Role, SessionKind
from .textcheck import text_problem

FORMAT_LABELS = {
    CourseFormat.INTENSIVE: "Intensive retreat",
    CourseFormat.WEEKLY: "Weekly",
    CourseFormat.BIWEEKLY: "Every two weeks",
}
KIND_LABELS = {
    SessionKind.PREPARATION: "Preparation",
    SessionKind.DOSING: "Dosing (medicine session)",
    SessionKind.INTEGRATION: "Integration",
    SessionKind.ASSESSMENT: "Assessment",
}
ROLE_LABELS = {
    Role.THERAPIST: "Therapist",
    Role.SUPERVISOR: "Supervisor",
    Role.ADMIN: "Administrator",
}
REVIEW_MODE_LABELS = {
    ReviewMode.APPROVE_BEFORE_SIGNING: "Approve before signing (trainee)",
    ReviewMode.COSIGN_AFTER_SIGNING: "Co-sign after signing",
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
    """Every form of the app: each input refuses control characters by itself."""

    class Meta:
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
    username = StringField("Username", [DataRequired(), Length(max=64)], filters=[_strip])
    password = PasswordField("Password", [DataRequired(), Length(max=256)])


class PasswordChangeForm(KapForm):
    current = PasswordField("Current password", [DataRequired(), Length(max=256)])
    new = PasswordField("New password", [DataRequired(), Length(min=12, max=256)],
                        description="At least 12 characters. A short sentence works well.")
    confirm = PasswordField("New password again", [DataRequired(), Length(max=256)])

    def validate_confirm(self, field) -> None:
        if field.data != self.new.data:
            raise ValidationError("The two new passwords differ.")


class CodeForm(KapForm):
    """A six-digit code from the authenticator app, or a recovery code."""

    code = StringField("Code", [DataRequired("Enter the code your app shows."), Length(max=32)],
                       filters=[_strip],
                       description="The six digits your authenticator app shows now, or one "
                                   "of your recovery codes.",
                       render_kw={"autocomplete": "one-time-code", "autocapitalize": "off",
                                  "spellcheck": "false"})


class EnrolForm(KapForm):
    code = StringField("Code from the app", [DataRequired("Enter the code your app shows."),
                                             Length(max=32)],
                       filters=[_strip],
                       description="After adding kaptools to the app, type the six digits "
                                   "it shows.",
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class TwoFactorOffForm(KapForm):
    password = PasswordField("Your password", [DataRequired(), Length(max=256)])


class TimeZoneForm(KapForm):
    time_zone = SelectField("Your time zone", validate_choice=True,
                            description="Pages show dates and times, and “today”, in this "
                                        "zone. Printed documents keep the clinic's.")


class RecordExportForm(KapForm):
    reason = TextAreaField("Why is the record leaving kaptools?",
                           [DataRequired("Say why the record is exported; it goes in the audit "
                                         "trail."), Length(max=500)],
                           filters=[_strip],
                           description="For example: the client asked for a copy of their "
                                       "record; moving to another clinic's system.",
                           render_kw={"rows": 2, "maxlength": 500})


class RolePolicyForm(KapForm):
    therapist = BooleanField("Therapists")
    supervisor = BooleanField("Supervisors")
    admin = BooleanField("Administrators")


class ClientForm(KapForm):
    code = StringField(
        "Client code",
        [DataRequired(), Length(min=2, max=32),
         Regexp(r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
                message="Use letters, digits, dashes or underscores, starting with a letter "
                        "or digit."),
         clean_text(identifier=True)],
        filters=[_strip],
        description="A pseudonymous code such as KT-0142. Never the client's name.",
    )
    display_name = StringField(
        "Display name (optional)",
        [Optional(), Length(max=120), clean_text(identifier=True)],
        filters=[_strip],
        description="Shown only to you and your supervisor; leave empty to use the code alone.",
    )
    archived = BooleanField("Archived")


class CourseForm(KapForm):
    title = StringField("Title", [DataRequired(), Length(max=120), clean_text()],
                        filters=[_strip],
                        description="For example: Spring intensive, or Weekly course 2.")
    format = SelectField("Format",
                         choices=choice_list((k.value, v) for k, v in FORMAT_LABELS.items()))
    starts_on = DateField("First day", [DataRequired(message="Enter the first day.")])
    ends_on = DateField("Last day (optional)", [Optional()])
    intentions = TextAreaField(
        "Intentions",
        [Optional(), Length(max=4000), clean_text(multiline=True)],
        description="What the client hopes to work on in this course, in their words if "
                    "possible.",
    )

    def validate_ends_on(self, field) -> None:
        if field.data and self.starts_on.data and field.data < self.starts_on.data:
            raise ValidationError("The last day cannot come before the first day.")


class SessionForm(KapForm):
    kind = SelectField("Kind", choices=choice_list((k.value, v) for k, v in KIND_LABELS.items()))
    session_date = DateField("Date", [DataRequired(message="Enter the session date.")])
    follows_id = SelectField("Follows dosing session", coerce=int, choices=[],
                             description="An integration session names the dosing session it "
                                         "follows.")
    summary = StringField("Short description (optional)",
                          [Optional(), Length(max=200), clean_text()], filters=[_strip])

    def validate_follows_id(self, field) -> None:
        if self.kind.data == SessionKind.INTEGRATION and not field.data:
            raise ValidationError("Choose the dosing session this integration follows.")


class UserForm(KapForm):
    username = StringField(
        "Username",
        [DataRequired(), Length(min=3, max=64),
         Regexp(r"^[a-z0-9][a-z0-9._-]*$", message="Use lower-case letters, digits, dots, "
                                                   "dashes or underscores.")],
        filters=[lambda v: v.strip().lower() if isinstance(v, str) else v],
    )
    display_name = StringField("Full name", [DataRequired(), Length(max=120),
                                             clean_text(identifier=True)], filters=[_strip])
    role = SelectField("Role", choices=choice_list((k.value, v) for k, v in ROLE_LABELS.items()))
    password = PasswordField("Password", [Optional(), Length(min=12, max=256)],
                             description="At least 12 characters. Leave empty to keep the "
                                         "current password.")
    active = BooleanField("Account active", default=True)


class SupervisionForm(KapForm):
    supervisor_id = SelectField("Supervisor", coerce=int)
    supervisee_id = SelectField("Supervisee", coerce=int)
    starts_on = DateField("Starts", [DataRequired(message="Enter the start date.")])
    ends_on = DateField("Ends (optional)", [Optional()])
    review_mode = SelectField("Review mode",
                              choices=choice_list(
                                  (k.value, v) for k, v in REVIEW_MODE_LABELS.items()))

    def validate_supervisee_id(self, field) -> None:
        if field.data == self.supervisor_id.data:
            raise ValidationError("Someone cannot supervise themselves.")

    def validate_ends_on(self, field) -> None:
        if field.data and self.starts_on.data and field.data < self.starts_on.data:
            raise ValidationError("The end cannot come before the start.")


class EndSupervisionForm(KapForm):
    ends_on = DateField("Ends on", [DataRequired(message="Enter the end date.")])


class AuditFilterForm(FilterForm):
    user = StringField("User", [Optional(), Length(max=64)], filters=[_strip])
    client = StringField("Client code", [Optional(), Length(max=32)], filters=[_strip])
    action = StringField("Action", [Optional(), Length(max=48)], filters=[_strip])
    since = DateField("From", [Optional()])
    until = DateField("To", [Optional()])


class ReviewFilterForm(FilterForm):
    """Filters of the review queue; an empty choice means "all"."""

    supervisee = SelectField("Supervisee", choices=[], default="")
    status = SelectField("Status", choices=[], default="")
    since = DateField("Submitted from", [Optional()])
    until = DateField("to", [Optional()])


class AddendumForm(KapForm):
    body = TextAreaField("Addendum", [DataRequired(message="Write the addendum first."),
                                      Length(max=10000)],
                         description="Signed and dated with your name when added. It cannot "
                                     "be changed afterwards.", id="addendum-body",
                         render_kw={"rows": 4, "maxlength": 10000})


class EnteredInErrorForm(KapForm):
    reason = StringField("Reason", [DataRequired(message="Give a reason."), Length(max=2000)],
                         filters=[_strip], id="error-reason", render_kw={"maxlength": 2000})


class CommentForm(KapForm):
    body = TextAreaField("Comment", [DataRequired(message="Write a comment first."),
                                     Length(max=4000)])
    field_key = StringField("Field", [Optional(), Length(max=200)])
