"""`flask links create`: the scriptable form of creating an authorization link."""

from __future__ import annotations

import re


def test_links_create_prints_a_working_url_once(app, client, demo_data):
    from portal.extensions import db
    from portal.models import AuthorizationLink, Organization

    with app.app_context():
        org = db.session.scalars(db.select(Organization).order_by(Organization.id)).first()
        org_ref, org_name = org.external_id, org.name
    result = app.test_cli_runner().invoke(
        args=[
            "links",
            "create",
            "--org",
            org_ref,
            "--provider",
            "exact-online",
            "--region",
            "nl",
            "--company",
            "3010001",
            "--note",
            "Book the invoices",
            "--base-url",
            "https://portal.example.com",
        ]
    )
    assert result.exit_code == 0, result.output
    url = re.search(r"https://portal\.example\.com/\S+", result.output).group(0)
    token = url.rsplit("/", 1)[1]
    with app.app_context():
        link = db.session.scalars(db.select(AuthorizationLink)).one()
        assert token not in (link.token_hash or "") and link.expected_company_id == "3010001"
    page = client.get(url.removeprefix("https://portal.example.com"))
    assert page.status_code == 200 and org_name in page.get_data(as_text=True)


def test_links_create_refuses_bad_input_precisely(app, demo_data):
    from portal.extensions import db
    from portal.models import AuthorizationLink, Organization

    with app.app_context():
        org_ref = db.session.scalars(db.select(Organization.external_id)).first()
    runner = app.test_cli_runner()
    unknown = runner.invoke(args=["links", "create", "--org", "nope", "--provider", "bexio"])
    assert unknown.exit_code != 0 and "no organization with SaaS id 'nope'" in unknown.output
    no_region = runner.invoke(args=["links", "create", "--org", org_ref, "--provider", "exact-online"])
    assert no_region.exit_code != 0 and "instance" in no_region.output
    too_long = runner.invoke(args=["links", "create", "--org", org_ref, "--provider", "bexio", "--days", "45"])
    assert too_long.exit_code != 0 and "1 to 30 days" in too_long.output
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(AuthorizationLink.id))) == 0
