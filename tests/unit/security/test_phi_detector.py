import pytest

from medtune.security.phi.detector import PhiDetector, merge_hits
from medtune.security.phi.patterns import Hit
from medtune.security.phi.types import PhiType


@pytest.fixture(scope="module")
def det():
    return PhiDetector(use_presidio=False)


def _found(det, text):
    return {(text[s.start:s.end], s.type.value) for s in det.detect(text)}


def test_eponyms_stay_while_people_with_those_names_go(det):
    text = ("Dr. Parkinson reviewed her Parkinson's disease. Mr. Murphy has a positive Murphy sign and Graves disease; "
            "Murphy was told. Her daughter Grace Hashimoto has Hashimoto thyroiditis.")
    red = det.redact(text).text
    for kept in ("Parkinson's disease", "Murphy sign", "Graves disease", "Hashimoto thyroiditis"):
        assert kept in red, red
    assert "Dr. [NAME]" in red and "Mr. [NAME]" in red and "[NAME] was told" in red and "daughter [NAME]" in red


def test_clinical_numbers_are_not_identifiers(det):
    text = ("BP 150/95 mmHg, HR 112, T 101F, temp 99 F, SpO2 91%. Platelets 250,000/uL, HIV viral load 1250000 copies/mL, "
            "carbidopa-levodopa 25/100 mg, QTc 480 ms, a 89-year-old man, diagnosed in 2015, age 67.")
    assert det.detect(text) == []


def test_ages_over_89_and_all_date_elements_but_the_year(det):
    found = _found(det, "A 90-year-old seen 03/14/2021, on 3/14, in March 2019 and on the 5th of June; age 93. "
                        "Follow-up 2021-11-03. Born in 1931.")
    assert {("90-year-old", "AGE"), ("93", "AGE"), ("03/14/2021", "DATE"), ("3/14", "DATE"), ("March 2019", "DATE"),
            ("5th of June", "DATE"), ("2021-11-03", "DATE")} <= found
    assert not any(t == "1931" for t, _ in found)


@pytest.mark.parametrize("text,piece,kind", [
    ("Call (217) 555-0143 today", "(217) 555-0143", "PHONE"),
    ("Fax: 217.555.0199", "217.555.0199", "FAX"),
    ("mail maria.g@example.org now", "maria.g@example.org", "EMAIL"),
    ("SSN 123-45-6789.", "123-45-6789", "SSN"),
    ("MRN: 00482913", "00482913", "MRN"),
    ("Member ID: XEH928374651", "XEH928374651", "HEALTH_PLAN"),
    ("Acct #: 55-2019-883", "55-2019-883", "ACCOUNT"),
    ("DEA number AB1234563", "AB1234563", "LICENSE"),
    ("VIN 1HGCM82633A004352", "1HGCM82633A004352", "VEHICLE"),
    ("serial number PJN741289H", "PJN741289H", "DEVICE"),
    ("see https://mychart.example.org/p/8832.", "https://mychart.example.org/p/8832", "URL"),
    ("from 192.168.14.203 and", "192.168.14.203", "IP"),
    ("from 2001:db8::8a2e:370:7334 and", "2001:db8::8a2e:370:7334", "IP"),
    ("study ID MT-2291-004", "MT-2291-004", "ID"),
    ("lives at 1234 Oak Street, Apt 4B", "1234 Oak Street, Apt 4B", "LOCATION"),
    ("Springfield, IL 62704", "Springfield, IL 62704", "LOCATION"),
    ("Patient: GONZALEZ, MARIA A", "GONZALEZ, MARIA A", "NAME"),
])
def test_each_identifier_shape(det, text, piece, kind):
    assert (piece, kind) in _found(det, text)


def test_states_and_countries_are_kept(det):
    red = det.redact("Moved to Dayton from Mexico; family in Ohio.").text
    assert red == "Moved to [LOCATION] from Mexico; family in Ohio."


def test_redaction_replaces_spans_and_leaves_the_rest(det):
    text = "Mr. Chen (MRN 4829130) takes metformin 500 mg."
    red = det.redact(text)
    assert red.text == "Mr. [NAME] (MRN [MRN]) takes metformin 500 mg."
    assert [(s.start, s.end, s.type) for s in red.spans] == [(4, 8, PhiType.NAME), (14, 21, PhiType.MRN)]
    assert red.counts == {"NAME": 1, "MRN": 1}
    assert det.redact("No identifiers here: metformin 500 mg.").spans == []


def test_overlapping_hits_merge_to_the_most_confident_type():
    spans = merge_hits([Hit(0, 12, PhiType.ID, 10), Hit(0, 12, PhiType.FAX, 67), Hit(20, 25, PhiType.NAME, 40)])
    assert [(s.start, s.end, s.type) for s in spans] == [(0, 12, PhiType.FAX), (20, 25, PhiType.NAME)]
    spans = merge_hits([Hit(0, 5, PhiType.NAME, 40), Hit(3, 9, PhiType.LOCATION, 45)])
    assert [(s.start, s.end, s.type) for s in spans] == [(0, 9, PhiType.LOCATION)]


def test_presidio_is_used_when_installed():
    pytest.importorskip("presidio_analyzer", reason="optional extra `phi` (presidio-analyzer) not installed")
    det = PhiDetector(use_presidio=True)
    assert det.presidio is not None
    assert ("4111 1111 1111 1111", "ACCOUNT") in _found(det, "card 4111 1111 1111 1111 on file")
