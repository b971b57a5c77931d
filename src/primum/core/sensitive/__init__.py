"""Detectors of secrets and patient identifiers in text. Pure: strings in, spans out.

``secrets.py`` finds credentials (detect-secrets' vendor formats, PEM keys, bearer tokens,
``password=…`` assignments) and says whether a literal configuration value is one;
``identifiers.py`` finds patient identifiers (NHS numbers, SSNs, MRNs, Medicare MBIs, dates of birth
with the name next to them, HL7 PID fields, phone numbers, e-mail addresses). Both yield
``(start, end, kind)`` spans over a :class:`~primum.core.sensitive.text.Text`; what to do with a span
(a marker, a note, a refusal) is the caller's: ``core/evidence/redact.py`` for evidence, the store and
logs, ``core/model`` for the estate's environment values. A package of its own so that both of
those can use it without importing each other.
"""
