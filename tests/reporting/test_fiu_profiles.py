"""FIU profiles: an uploaded goAML XSD is checked, and its code lists and supportedIn
annotations are read from it, per profile and schema version."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import User
from reporting import actions
from reporting.goaml import schema
from reporting.models import FiuProfile, FiuSchema
from tests.conftest import client_for
from tests.factories import make_user
from tests.recorded import events
from tests.reporting.fiu import GENERIC, PPATK, UAE, UAE_AS_ISSUED, fiu_file

pytestmark = pytest.mark.django_db

LIST = reverse("fiu_profiles:list")


@pytest.fixture
def admin(db: None) -> User:
    return make_user("alice", ["admin"])


def create(admin: User, relative: str = UAE, **overrides: object) -> FiuProfile:
    fields: dict[str, object] = {
        "slug": "uae",
        "name": "UAE Financial Intelligence Unit",
        "rentity_id": 2079,
        "rentity_branch": "Head office",
        "currency_code_local": "AED",
        "filename": relative.rsplit("/", 1)[-1],
        "data": fiu_file(relative),
        **overrides,
    }
    return actions.create_profile(acting_user=admin, **fields)  # type: ignore[arg-type]


# --- reading a schema ----------------------------------------------------------------------------


def test_it_reads_the_uae_code_lists_and_version_annotations() -> None:
    extracted = schema.read(fiu_file(UAE))
    assert extracted.version == "5.0.2"
    assert {"STR", "SAR", "AIF"} <= set(extracted.codes("report_type"))
    assert len(extracted.codes("report_indicator_type")) == 423
    assert "AED" in extracted.codes("currency_type")
    assert "AE" in extracted.codes("country_type")
    funds = {c.code: c.label for c in extracted.code_lists["funds_type"]}
    assert funds["B"] == "Electronic funds transfer (UN-DEFAULT)"  # the comment inside the enumeration
    assert len(extracted.supported_in) == 142  # every goaml:supportedIn of the schema
    assert extracted.supported_in["report/schema_version"] == "5.1"
    assert extracted.supported_in["t_conductor"] == "5.1"
    assert extracted.anchored_patterns == []


def test_it_reports_the_anchored_patterns_of_the_uae_schema_as_issued() -> None:
    extracted = schema.read(fiu_file(UAE_AS_ISSUED))
    assert extracted.anchored_patterns
    assert all(p.startswith("^") or p.endswith("$") for p in extracted.anchored_patterns)


def test_code_lists_differ_between_fius() -> None:
    uae, generic, ppatk = (schema.read(fiu_file(f)) for f in (UAE, GENERIC, PPATK))
    assert uae.codes("report_type") != generic.codes("report_type") != ppatk.codes("report_type")
    assert "LTKM" in ppatk.codes("report_type")
    assert ppatk.version == ""  # PPATK 4.0.2 does not state its version


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"<xs:schema", "not well-formed"),
        (b"<root/>", "not an XML Schema"),
        (
            b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="x"/></xs:schema>',
            "no <report> element",
        ),
        (
            (
                b'<!DOCTYPE x [<!ENTITY e "boom">]><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
                b'<xs:element name="report"/></xs:schema>'
            ),
            "DOCTYPE",
        ),
        (
            (
                b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:include schemaLocation="http://x/y.xsd"/>'
                b'<xs:element name="report"/></xs:schema>'
            ),
            "xs:include",
        ),
        (
            (
                b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="report" type="nowhere"/>'
                b"</xs:schema>"
            ),
            "cannot compile",
        ),
    ],
)
def test_it_refuses_what_is_not_a_usable_goaml_schema(data: bytes, message: str) -> None:
    with pytest.raises(schema.SchemaError, match=message):
        schema.read(data)


# --- profiles ------------------------------------------------------------------------------------


def test_an_administrator_creates_a_profile_with_its_schema(admin: User) -> None:
    profile = create(admin)
    stored = FiuSchema.objects.get(profile=profile)
    assert (stored.version, stored.is_current, stored.uploaded_by) == ("5.0.2", True, admin)
    assert stored.codes("report_type")[0][0] == "AIF"
    assert bytes(stored.xsd) == fiu_file(UAE)
    assert [e["name"] for e in events()] == ["FIU_PROFILE_CREATED", "FIU_SCHEMA_UPLOADED"]
    uploaded = events()[-1]
    assert uploaded["object"] == {"type": "fiu-profile", "id": "uae"}
    assert uploaded["after"] == {
        "version": "5.0.2",
        "sha256": stored.sha256,
        "code_lists": len(stored.code_lists),
        "anchored_patterns": 0,
    }


def test_a_new_version_becomes_current_and_the_old_one_stays(admin: User) -> None:
    profile = create(admin, UAE_AS_ISSUED)
    actions.upload_schema(profile, filename="goAMLSchema.xsd", data=fiu_file(UAE), acting_user=admin)
    assert list(FiuSchema.objects.filter(profile=profile).values_list("is_current", flat=True)) == [True, False]
    assert profile.current_schema() is not None
    with pytest.raises(ValidationError, match="uploaded to the profile before"):
        actions.upload_schema(profile, filename="again.xsd", data=fiu_file(UAE), acting_user=admin)


def test_a_schema_without_its_version_needs_one_named(admin: User) -> None:
    with pytest.raises(ValidationError, match="name it"):
        create(admin, PPATK, slug="ppatk", name="PPATK", currency_code_local="IDR")
    profile = create(admin, PPATK, slug="ppatk", name="PPATK", currency_code_local="IDR", version="4.0.2")
    assert profile.current_schema().version == "4.0.2"  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match=r"states goAML 5\.0\.2, not 4\.0"):
        create(admin, UAE, version="4.0")


def test_the_local_currency_must_be_in_the_schemas_list(admin: User) -> None:
    with pytest.raises(ValidationError, match="XYZ is not a currency"):
        create(admin, currency_code_local="XYZ")
    assert not FiuProfile.objects.exists()
    assert events() == []


def test_only_administrators_of_settings_keep_profiles(db: None) -> None:
    analyst = make_user("bob", ["analyst"])
    with pytest.raises(PermissionDenied):
        create(analyst)


# --- the pages -----------------------------------------------------------------------------------


def test_the_pages_create_a_profile_and_show_its_code_lists(admin: User) -> None:
    client = client_for(admin)
    upload = SimpleUploadedFile("goAMLSchema.xsd", fiu_file(UAE_AS_ISSUED), content_type="application/xml")
    response = client.post(
        LIST,
        {
            "name": "UAE FIU",
            "slug": "uae",
            "rentity_id": "2079",
            "rentity_branch": "",
            "currency_code_local": "AED",
            "xsd": upload,
        },
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "report_indicator_type: 423 codes" in page
    assert "refuse every real value" in page  # the schema as issued: its anchored patterns
    assert "UAE FIU" in client.get(LIST).content.decode()


def test_the_pages_refuse_a_bad_upload_clearly(admin: User) -> None:
    client = client_for(admin)
    upload = SimpleUploadedFile("notes.xsd", b"<root/>", content_type="application/xml")
    response = client.post(
        LIST,
        {"name": "X", "slug": "x", "rentity_id": "1", "currency_code_local": "AED", "xsd": upload},
    )
    assert response.status_code == 400
    assert "not an XML Schema" in response.content.decode()
    assert not FiuProfile.objects.exists()
