"""Records a ledger cannot take (bexio credit notes): Ledgerlink's own words, and no re-sync offered or done."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from portal.models import Connection, ExternalRecord, RecordState, SyncRun

#: The manual step as the bexio adapter words it (Ledgerlink's text, not bexio's).
MANUAL_STEP = (
    "bexio has no API for credit notes: create credit note CN-7 by hand in bexio → Sales → Invoices: open the "
    "invoice it corrects and create a credit note (Gutschrift) from it, or cancel the invoice there"
)
EXPLANATION = "The ledger cannot do this; handle it in the ledger by hand."
#: A refusal bexio itself worded.
BEXIO_TEXT = "The field 'contact_id' must reference an existing contact"


def _row(page: str, record_id: int) -> str:
    match = re.search(rf'<tr id="record-{record_id}".*?</tr>', page, re.S)
    assert match, page
    return html.unescape(match.group(0))


def test_the_records_page_labels_only_the_providers_text_and_offers_no_resync_where_none_can_work(
    app, db, ops_client, world
):
    client, _token = ops_client
    cid = world.connection("bexio")
    # As stored before (the manual step in the provider's slot), and as the push stores it now.
    legacy = world.record(
        cid, "skipped", kind="credit_note", error_class="not_supported", text=f"{EXPLANATION} (bexio: {MANUAL_STEP})"
    )
    current = world.record(
        cid, "skipped", kind="credit_note", error_class="not_supported", text=f"{EXPLANATION} {MANUAL_STEP}"
    )
    refused = world.record(
        cid, "failed", error_class="validation", text=f"The ledger refused the record. (bexio: {BEXIO_TEXT})"
    )

    page = client.get(f"/ops/connections/{cid}/records").get_data(as_text=True)
    for record_id in (legacy, current):
        row = _row(page, record_id)
        assert "by hand in bexio" in row and "said" not in row, row
        assert "/resync" not in row and "No re-sync" in row
    row = _row(page, refused)
    assert f"bexio said: <q>{BEXIO_TEXT}</q>" in row and f"/ops/records/{refused}/resync" in row


def test_a_resync_of_a_record_the_ledger_cannot_take_is_refused_with_the_reason(app, db, ops_client, world):
    client, token = ops_client
    cid = world.connection("bexio")
    note = world.record(cid, "skipped", kind="credit_note", error_class="not_supported", text=MANUAL_STEP)
    other = world.record(cid, "skipped", error_class="mapping_missing")

    answer = client.post(f"/ops/records/{note}/resync", data={"csrf_token": token}, follow_redirects=True)
    text = html.unescape(answer.get_data(as_text=True))
    assert "This credit note cannot be re-synced" in text and "by hand in the ledger" in text
    db.session.expire_all()
    assert db.session.get(ExternalRecord, note).state is RecordState.skipped
    assert db.session.scalars(select(SyncRun)).all() == []

    # Re-syncing the whole connection leaves it too, and says so; other skipped records do go back.
    answer = client.post(f"/ops/connections/{cid}/resync", data={"csrf_token": token}, follow_redirects=True)
    assert "the ledger cannot take them" in html.unescape(answer.get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(ExternalRecord, note).state is RecordState.skipped
    assert db.session.get(ExternalRecord, other).state is RecordState.pending


def test_the_push_keeps_the_provider_slot_for_the_providers_own_text(app, db, world):
    from portal.integrations.base import NotSupported, Rejected
    from portal.sync import push

    connection = db.session.get(Connection, world.connection("bexio"))
    error_class, text = push.explain(connection, NotSupported(MANUAL_STEP, provider="bexio"))
    assert error_class == "not_supported" and MANUAL_STEP in text and "(bexio:" not in text
    own = push.explain(connection, Rejected("bexio invoice 12 is cancelled: it cannot be issued", provider="bexio"))
    assert "(bexio:" not in own[1] and "is cancelled" in own[1]
    said = push.explain(connection, Rejected("refused", provider="bexio", status=422, provider_text=BEXIO_TEXT))
    assert said[1].endswith(f"(bexio: {BEXIO_TEXT})")
