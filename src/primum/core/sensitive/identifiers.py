"""Patient identifiers in text: NHS numbers, SSNs, MRNs, Medicare MBIs, dates of birth, HL7 PID fields,
phone numbers and e-mail addresses. Pure.

PHI has no library of the same standing as detect-secrets (Presidio needs spaCy models and is far too
slow for every event), and the PHI that reaches release evidence has a few stable shapes, so these are
regexes written for false-positive control; ``bench/redaction.py`` measures recall per kind and the
false-positive rate on digests, commit SHAs, UUIDs, timestamps, versions, ports and durations:

- **NHS numbers** (``nhs_number``): 10 digits, grouped 3-3-4 by spaces, dashes or underscores (test
  names) or not at all, whose last digit is the modulus-11 check digit of the other nine, so ten random
  10-digit numbers in eleven do not match. Not a run of one digit (``0000000000`` passes the check). An
  ungrouped number counts without an ``NHS`` label only if it starts as issued numbers do (3, 4, 6, 7;
  9 for test numbers) and is not in 1 000 000 000-2 100 000 000, where epoch seconds are;
- **US SSNs** (``ssn``): ``ddd-dd-dddd`` minus the never-issued areas 000, 666 and 9xx, group 00 and
  serial 0000; undashed only after an ``SSN`` label;
- **MRNs** (``mrn``): after a label (``MRN``, ``medical record number``, ``hospital number``,
  ``patient id``…, also glued into identifiers as in ``test_mrn_12345``), any value with a digit;
  without a label, the site-prefixed shape ``ABC123456``/``ABC-123456``/``ABC_123456`` (2-4 capitals,
  6-10 digits),
  except prefixes of tickets and advisories (``CHG``, ``INC``, ``CVE``, ``PR``…);
- **Medicare Beneficiary Identifiers** (``mbi``): CMS's 11-character format (``1EG4-TE5-MK73``: digit,
  letter, letter or digit, digit, letter, letter or digit, digit, letter, letter, digit, digit; no S,
  L, O, I, B or Z), dashes (or underscores) optional;
- **dates of birth** (``dob``): a date after ``DOB``/``born``/``date of birth`` (a bare date is never
  redacted), plus the capitalised name right before that label (``person_name``);
- **HL7 v2 PID segments**: the identifier, name, birth date, address, phone, account, SSN and licence
  fields (PID-2..7, 9, 11, 13, 14, 18, 19, 20), field by field;
- **e-mail addresses** (``email``; not a URL's user, nor the public mailboxes scanners name as a CVSS
  score's source, such as ``nvd@nist.gov``) and **phone numbers** (``phone``): North American
  ``(555) 867-5309``/``555-867-5309``/``+1 555 867 5309`` and UK ``020 7946 0018``/``+44 7700 900123``
  (grouped, 10 national digits).

Not detected: names without a DOB label (that needs NER), addresses outside HL7, identifiers split
across strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from primum.core.sensitive.text import Insensitive, Span, Text, has_digit

__all__ = ["CONTACT_DETECTORS", "IDENTIFIER_DETECTORS", "nhs_check_digit_ok"]

# Before and after an identifier: not a letter or digit (an underscore is a separator: test names).
_OPEN = r"(?<![0-9A-Za-z])"
_CLOSE = r"(?![0-9A-Za-z])"

# not a piece of a longer dashed number (12-943-476-5919-1) nor an international phone number (+9434765919)
_NHS = re.compile(rf"{_OPEN}(?<!\+)(?<!\d-)(\d{{3}})([ _-]?)(\d{{3}})\2(\d{{4}}){_CLOSE}(?!-\d)")
# Issued NHS numbers start 3 (Northern Ireland), 4, 6 or 7 (England, Wales, Isle of Man); 9 is the test range
# (943 476 5919 is the well-known synthetic one). An ungrouped number starting otherwise needs a label.
_NHS_FIRST_DIGITS = frozenset("34679")
_NHS_LABEL = re.compile(r"nhs[ _\-]*(?:number|no\b|num|#|:)?", re.IGNORECASE)
_EPOCH_LOW, _EPOCH_HIGH = 1_000_000_000, 2_100_000_000
# A cheap gate for NHS and phone numbers: a run of digits and separators holding ten digits. Timestamps,
# versions, UUIDs and digests break their digits with letters and colons, so most texts fail it.
_DIGIT_RUN = re.compile(r"\d[\d ._()+\-]{9,}")  # "_": identifiers in test names
_DROP_DIGITS = str.maketrans("", "", "0123456789")


def _ten_digits(t: Text) -> bool:
    found = t.gates.get("ten_digits")
    if found is None:
        found = any(len(run) - len(run.translate(_DROP_DIGITS)) >= 10
                    for run in _DIGIT_RUN.findall(t.text))
        t.gates["ten_digits"] = found
    return found


def nhs_check_digit_ok(digits: str) -> bool:
    """The NHS modulus-11 check: weights 10..2 over the first nine digits; 11 - (sum mod 11) is the tenth,
    with 11 meaning 0 and 10 meaning no valid number."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def _nhs_numbers(t: Text) -> Iterator[Span]:
    text = t.text
    if not _ten_digits(t):
        return
    for match in _NHS.finditer(text):
        start, end = match.span()
        # a decimal (1.9434765919, 9434765919.5) or a dotted/colon-separated number is not an identifier
        if (start >= 2 and text[start - 1] in ".:" and text[start - 2].isdigit()) or (
            end + 1 < len(text) and text[end] in ".:" and text[end + 1].isdigit()
        ):
            continue
        digits = match.group(1) + match.group(3) + match.group(4)
        if len(set(digits)) == 1 or not nhs_check_digit_ok(digits):
            continue
        bare = not match.group(2) and (digits[0] not in _NHS_FIRST_DIGITS or _EPOCH_LOW <= int(digits) <= _EPOCH_HIGH)
        if bare and not _NHS_LABEL.search(text, max(0, start - 24), start):
            continue
        yield start, end, "nhs_number"


# An SSN is found from its "-dd-" middle (a literal-led search, cheap), then checked around it.
_SSN_MIDDLE = re.compile(r"-\d\d-")
_SSN_LABELLED = Insensitive(
    r"(?<![a-z0-9])(?:ssn|social[ _-]security(?:[ _-](?:number|no))?)\.?[ \t_]*[:#=]?[ \t_]*"
    r"((?!000|666|9\d\d)\d{3}[ -]?(?!00)\d{2}[ -]?(?!0000)\d{4})(?!\d)"
)


def _ssns(t: Text) -> Iterator[Span]:
    text = t.text
    for match in _SSN_MIDDLE.finditer(text):
        start, end = match.start() - 3, match.end() + 4
        if start < 0 or end > len(text):
            continue
        area, group, serial = text[start : match.start()], match.group()[1:3], text[match.end() : end]
        if not (area.isdigit() and area.isascii() and serial.isdigit() and serial.isascii()):
            continue
        if (start > 0 and (text[start - 1].isdigit() or text[start - 1] == "-")) or (
            end < len(text) and (text[end].isdigit() or text[end] == "-")
        ):
            continue
        # Never issued: area 000, 666 and 900-999 (ITINs, ads), group 00, serial 0000.
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        yield start, end, "ssn"
    if t.has(("ssn", "social")):
        for m in _SSN_LABELLED.finditer(t):
            yield m.start(1), m.end(1), "ssn"


_MRN_WORDS = ("mrn", "medical", "hospital", "patient", "pt id", "pt_id", "pt-id", "ptid")
_MRN = Insensitive(
    r"""(?<![a-z0-9])(?:mrn|medical[ _-]record(?:[ _-](?:number|num|no))?|hospital[ _-]?(?:number|num|no)"""
    r"""|patient[ _-]?(?:id|number|num|no)|pt[ _-]?id)(?![a-z])\.?["']?[ \t_]*[:#=]?[ \t_]*["']?"""
    r"""([a-z0-9][a-z0-9-]*)"""
)
_SIX_DIGITS = re.compile(r"\d{6}")
_MRN_SHAPE = re.compile(rf"{_OPEN}([A-Z]{{2,4}})[-_]?\d{{6,10}}{_CLOSE}")
# Ticket, change and advisory numbers have the same shape; they are not patients.
_NOT_MRN_PREFIXES = frozenset({
    "CHG", "INC", "RITM", "PRB", "TASK", "REQ", "CTASK", "SCTASK", "KB", "PR", "CR", "MR", "CVE", "CWE", "GHSA",
    "RHSA", "USN", "DSA", "ALAS", "JIRA", "BUG", "RUN", "JOB", "ID",
})


def _mrns(t: Text) -> Iterator[Span]:
    if t.has(_MRN_WORDS):
        for match in _MRN.finditer(t):
            if has_digit(match.group(1)):  # "MRN lookup" is prose, "MRN SYN0042" is an identifier
                yield match.start(1), match.end(1), "mrn"
    if not _SIX_DIGITS.search(t.text):
        return
    for match in _MRN_SHAPE.finditer(t.text):
        if match.group(1) not in _NOT_MRN_PREFIXES:
            yield match.start(), match.end(), "mrn"


_MBI_LETTER = "[AC-HJKMNP-RT-Y]"
_MBI_ANY = "[0-9AC-HJKMNP-RT-Y]"
_MBI = re.compile(
    rf"{_OPEN}[1-9]{_MBI_LETTER}{_MBI_ANY}\d([-_]?){_MBI_LETTER}{_MBI_ANY}\d\1{_MBI_LETTER}{{2}}\d\d{_CLOSE}"
)


def _mbis(t: Text) -> Iterator[Span]:
    for match in _MBI.finditer(t.text):
        yield match.start(), match.end(), "mbi"


_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = (
    rf"\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{8}}"
    rf"|\d{{1,2}}[ \t]+{_MONTH},?[ \t]+\d{{4}}|{_MONTH}[ \t]+\d{{1,2}},?[ \t]+\d{{4}}"
)
_DOB_WORDS = ("dob", "d.o.b", "birth", "born")
_DOB = Insensitive(
    r"""(?<![a-z0-9])(?:d\.?o\.?b\.?|date[ _-]of[ _-]birth|birth[ _-]?date|birthday|born(?:[ \t]+on)?)"""
    rf"""(?![a-z])["']?[ \t_]*[:=#]?[ \t_]*["']?({_DATE})(?!\d)"""
)
_NAME_BEFORE = re.compile(r"([A-Z][A-Za-z'\-]+(?:,?[ \t]+(?:[A-Z]\.|[A-Z][A-Za-z'\-]+)){1,3})[ \t]*[,;:(\-]?[ \t]*\Z")


def _dates_of_birth(t: Text) -> Iterator[Span]:
    if not t.has(_DOB_WORDS):
        return
    for match in _DOB.finditer(t):
        yield match.start(1), match.end(1), "dob"
        name = _NAME_BEFORE.search(t.text, max(0, match.start() - 80), match.start())
        if name:
            yield name.start(1), name.end(1), "person_name"


_HL7_PID = re.compile(r"(?<![A-Za-z0-9])PID\|([^\r\n]*)")
_PID_FIELDS = {
    2: "mrn", 3: "mrn", 4: "mrn", 5: "person_name", 6: "person_name", 7: "dob", 9: "person_name",
    11: "address", 13: "phone", 14: "phone", 18: "account_number", 19: "ssn", 20: "drivers_license",
}


def _hl7(t: Text) -> Iterator[Span]:
    if "PID|" not in t.text:
        return
    for match in _HL7_PID.finditer(t.text):
        at = match.start(1)
        for number, field in enumerate(match.group(1).split("|"), start=1):
            kind = _PID_FIELDS.get(number)
            if kind and field.strip("^~& "):
                yield at, at + len(field), kind
            at += len(field) + 1


# The mailboxes scanners name as the source of a CVSS score (Grype, Trivy): public, and no patient's.
_PUBLIC_MAILBOXES = frozenset({
    "nvd@nist.gov", "cve@mitre.org", "security-advisories@github.com", "secalert@redhat.com",
    "security@ubuntu.com", "team@security.debian.org", "psirt@us.ibm.com",
})
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_NANP = re.compile(r"(?<![\d-])(?:\+?1[ .-]?)?(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d-])")
_PHONE_UK = re.compile(r"(?<![\d+])(\+44[ ]?(?:\(0\)[ ]?)?|0)(\d{2,4})([ ]?)(\d{3,4})([ ]?)(\d{3,4})(?![\d-])")


def _emails(t: Text) -> Iterator[Span]:
    text = t.text
    if "@" in text:
        for match in _EMAIL.finditer(text):
            token = max(text.rfind(c, 0, match.start()) for c in " \t\r\n\"'") + 1
            if "://" in text[token : match.start()]:
                continue  # the user of a URL (postgresql://app:pw@db.example.org): its password is cut apart
            if match.group().lower() in _PUBLIC_MAILBOXES:
                continue
            yield match.start(), match.end(), "email"


def _phones(t: Text) -> Iterator[Span]:
    text = t.text
    if not _ten_digits(t):
        return
    for match in _PHONE_NANP.finditer(text):
        yield match.start(), match.end(), "phone"
    if "0" in text or "+44" in text:
        for match in _PHONE_UK.finditer(text):
            national = match.group(2) + match.group(4) + match.group(6)
            grouped = match.group(1) != "0" or match.group(3) or match.group(5)
            if len(national) == 10 and grouped:
                yield match.start(), match.end(), "phone"


# In priority order: on equal spans the earlier detector names the kind (an NHS number grouped 3-3-4
# is also a phone number's shape; it is reported as the NHS number it checks out as).
IDENTIFIER_DETECTORS = (_nhs_numbers, _ssns, _mbis, _hl7, _mrns, _dates_of_birth)
CONTACT_DETECTORS = (_emails, _phones)
