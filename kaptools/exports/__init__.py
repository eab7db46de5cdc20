"""Records that travel (issue 14): a client's record as a FHIR Bundle, and de-identified
research exports. Every export is audited with who, what and why."""
