"""Records that travel: templates and notes as FHIR R4 resources.

- ``questionnaire``: every template version as a Questionnaire;
- ``response``: every note as a QuestionnaireResponse of its template version;
- ``scoring``: computed scores, as SDC calculated items and their answers;
- ``terms``: canonical URLs, extensions, linkIds, LOINC codes and units;
- ``library``: the FHIR library that checks (and writes) every resource exported.

Private (psychotherapy) fields never leave: they are left out of the Questionnaire and
of every response alike, whatever is stored.
"""

from __future__ import annotations

from .questionnaire import questionnaire
from .response import questionnaire_response
from .terms import FHIR_BASE, canonical

__all__ = ["FHIR_BASE", "canonical", "questionnaire", "questionnaire_response"]
