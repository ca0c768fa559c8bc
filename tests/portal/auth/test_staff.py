"""Staff management for admins (page and CLI), audited, never without an admin; the password policy."""

from __future__ import annotations

import pytest

from tests.conftest import csrf_token_of


def _audit_kinds(app, user_id: int) -> list[str]:
    from portal.extensions import db
    from portal.models import AuditEvent

    with app.app_context():
        return list(
            db.session.scalars(
                db.select(AuditEvent.kind)
                .where(AuditEvent.subject_type == "StaffUser", AuditEvent.subject_id == user_id)
                .order_by(AuditEvent.id)
            )
        )


def _staff(app, user_id: int):
    from portal.extensions import db
    from portal.models import StaffUser

    with app.app_context():
        user = db.session.get(StaffUser, user_id)
        db.session.expunge(user)
        return user


def _can_log_in(app, email: str, password: str) -> bool:
    client = app.test_client()
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token}).status_code == 302


def test_only_admins_reach_the_staff_page(app, client, make_staff, login):
    login(make_staff("ops"))
    assert client.get("/staff").status_code == 403
    assert "Staff</a>" not in client.get("/").get_data(as_text=True)


def test_an_admin_adds_changes_and_deactivates_staff(app, client, make_staff, login):
    token = login(make_staff("admin"))
    page = client.get("/staff")
    assert page.status_code == 200 and "Add a staff member" in page.get_data(as_text=True)

    created = client.post(
        "/staff", data={"csrf_token": token, "email": " New.Person@Example.test ", "name": "New", "role": "support"}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_data(as_text=True)
    assert "new.person@example.test" in body and "shown this once" in body
    import re

    password = re.search(r"<code>([^<]+)</code>", body).group(1)
    assert _can_log_in(app, "new.person@example.test", password)

    from portal.extensions import db
    from portal.models import StaffUser

    with app.app_context():
        person_id = db.session.scalar(db.select(StaffUser.id).filter_by(email="new.person@example.test"))
    changed = client.post(f"/staff/{person_id}", data={"csrf_token": token, "action": "role", "role": "ops"})
    assert changed.status_code == 200
    assert _staff(app, person_id).role.value == "ops"
    reset = client.post(f"/staff/{person_id}", data={"csrf_token": token, "action": "reset_password"})
    new_password = re.search(r"<code>([^<]+)</code>", reset.get_data(as_text=True)).group(1)
    assert not _can_log_in(app, "new.person@example.test", password)
    assert _can_log_in(app, "new.person@example.test", new_password)
    client.post(f"/staff/{person_id}", data={"csrf_token": token, "action": "deactivate"})
    assert not _can_log_in(app, "new.person@example.test", new_password)
    client.post(f"/staff/{person_id}", data={"csrf_token": token, "action": "reactivate"})
    assert _can_log_in(app, "new.person@example.test", new_password)
    assert _audit_kinds(app, person_id) == [
        "staff.created",
        "staff.role_changed",
        "staff.password_reset",
        "staff.deactivated",
        "staff.reactivated",
    ]


def test_a_weak_or_taken_address_is_refused_with_the_reason(app, client, make_staff, login):
    admin = make_staff("admin")
    token = login(admin)
    taken = client.post("/staff", data={"csrf_token": token, "email": admin["email"], "role": "ops"})
    assert taken.status_code == 422 and "already exists" in taken.get_data(as_text=True)
    weak = client.post(
        "/staff", data={"csrf_token": token, "email": "weak@example.test", "role": "ops", "password": "Password1234!"}
    )
    assert weak.status_code == 422 and "too easy to guess" in weak.get_data(as_text=True)


def test_the_last_admin_cannot_remove_themself(app, client, make_staff, login):
    from portal.extensions import db
    from portal.models import Role, StaffUser

    with app.app_context():  # the only admin is the one logged in
        for other in db.session.scalars(db.select(StaffUser).where(StaffUser.role == Role.admin)):
            other.active = False
        db.session.commit()
    admin = make_staff("admin")
    token = login(admin)
    for data in ({"action": "deactivate"}, {"action": "role", "role": "ops"}):
        response = client.post(f"/staff/{admin['id']}", data={"csrf_token": token, **data})
        assert response.status_code == 409 and "only active admin" in response.get_data(as_text=True)
    assert _staff(app, admin["id"]).active and _staff(app, admin["id"]).role.value == "admin"
    # With a second admin the first may step down, and is logged out by it.
    make_staff("admin")
    response = client.post(f"/staff/{admin['id']}", data={"csrf_token": token, "action": "role", "role": "ops"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert _staff(app, admin["id"]).role.value == "ops"


def test_the_cli_manages_staff_and_audits_it(app, make_staff):
    person = make_staff("support")
    runner = app.test_cli_runner()
    assert "support" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "set-role", "--email", person["email"], "--role", "ops"]).exit_code == 0
    reset = runner.invoke(args=["users", "reset-password", "--email", person["email"].upper()])
    assert reset.exit_code == 0, reset.output
    password = reset.output.rsplit(": ", 1)[1].strip()
    assert _can_log_in(app, person["email"], password)
    assert runner.invoke(args=["users", "deactivate", "--email", person["email"]]).exit_code == 0
    assert not _can_log_in(app, person["email"], password)
    assert runner.invoke(args=["users", "reactivate", "--email", person["email"]]).exit_code == 0
    assert runner.invoke(args=["users", "end-sessions", "--email", person["email"]]).exit_code == 0
    unknown = runner.invoke(args=["users", "deactivate", "--email", "nobody@example.test"])
    assert unknown.exit_code != 0 and "no staff account" in unknown.output
    assert _audit_kinds(app, person["id"]) == [
        "staff.created",
        "staff.role_changed",
        "staff.password_reset",
        "staff.deactivated",
        "staff.reactivated",
        "staff.sessions_ended",
    ]


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("short1!", False),
        ("aaaaaaaaaaaaaaaa", False),
        ("Password1234!", False),
        ("qwertyuiop123", False),
        ("alice.smith2024", False),  # the person's own name and a year
        ("correct horse battery staple", True),
        ("tB7#kq2Lw9zXv", True),
    ],
)
def test_the_password_policy_refuses_guessable_passwords(app, password, accepted):
    from portal.auth.services import StaffError, check_password

    with app.app_context():
        if accepted:
            check_password(password, email="alice.smith@example.test", name="Alice Smith")
        else:
            with pytest.raises(StaffError):
                check_password(password, email="alice.smith@example.test", name="Alice Smith")
