"""The FHIR library: every exported resource is read and written by its models.

kaptools uses ``fhir.resources`` (8.x, pydantic 2), the maintained Python FHIR models.
Its releases from 7.0 on model R5 at the top level and **R4B** (4.3.0) under
``fhir.resources.R4B``; plain R4 (4.0.1) models exist only in 6.4 and earlier, which need
pydantic 1 and are no longer maintained. The R4B release changed other parts of FHIR
(medication definitions, subscriptions, evidence) and left Questionnaire and
QuestionnaireResponse as they are in R4, element for element, so these R4B models check
exactly the R4 resources kaptools writes.

The models check structure, cardinality, primitive formats and choice types ([x]); they
do not check coded values against FHIR's value sets (a questionnaire item's ``type``,
for instance), which their field metadata lists as ``enum_values``, some cut short.
"""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir_core.fhirabstractmodel import FHIRAbstractModel

__all__ = ["Questionnaire", "QuestionnaireResponse", "written_by_library"]


def written_by_library(model: type[FHIRAbstractModel], resource: dict[str, Any]
                       ) -> dict[str, Any]:
    """``resource`` parsed by the library's ``model`` and written back as the library
    writes it; a resource the model refuses raises ``pydantic.ValidationError``."""
    return json.loads(model.model_validate(resource).model_dump_json())
