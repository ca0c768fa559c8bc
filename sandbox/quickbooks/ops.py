"""Create, update, delete, void and send for each emulated entity, with QBO's validation rules.

Every function takes a :class:`~.ledger.Realm` whose lock the caller holds, and ``ts`` (the
emulated clock). Faults are raised as :class:`~.faults.QBOFault`.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from . import faults as F
from .faults import QBOFault
from .ledger import (
    ACCOUNT_CLASSIFICATION,
    ALLOWED,
    ITEM_TYPES,
    LINE_TYPES,
    NAME_ENTITIES,
    SALES_TXNS,
    Realm,
    money,
    num,
    strip_blank,
    to_date,
    to_decimal,
    unknown_property,
)

READ_ONLY_TAX = ("TaxCode", "TaxRate")


def _check_props(entity: str, payload: dict) -> None:
    allowed = ALLOWED.get(entity)
    if allowed is None:
        return
    for key in payload:
        if key not in allowed:
            raise unknown_property(entity, key)


def _merge_for_update(realm: Realm, entity: str, payload: dict) -> tuple[dict, dict]:
    """Check Id/SyncToken and return (existing, merged body) for a full or sparse update.

    :raise QBOFault: 2020 without Id/SyncToken, 610 for an unknown Id, 5010 for a stale token.
    """
    if "Id" not in payload:
        raise F.required("Id")
    existing = realm.get(entity, payload["Id"])
    if existing is None:
        raise F.not_found()
    if "SyncToken" not in payload:
        raise F.required("SyncToken")
    if str(payload["SyncToken"]) != existing["SyncToken"]:
        raise F.stale_object(realm.last_writer)
    # A full update clears every writable field that is not sent (quickbooks-online.md §3).
    merged = {**existing, **payload} if payload.get("sparse") is True else dict(payload)
    return existing, merged


# -- name lists ------------------------------------------------------------------------------
def save_name(realm: Realm, entity: str, payload: dict, ts: float, *, update: bool) -> dict:
    """Create or update a Customer, Vendor or Employee."""
    existing = None
    if update:
        existing, payload = _merge_for_update(realm, entity, payload)
    name = (payload.get("DisplayName") or "").strip()
    if not name:
        parts = [payload.get(k, "") for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if not name:
        name = (payload.get("CompanyName") or "").strip()
    if not name:
        raise F.required("DisplayName")
    if ":" in name:
        raise F.business("Name cannot contain a colon (:).", "DisplayName")
    own = (entity, existing["Id"]) if existing else None
    realm.check_unique_name(name, own=own)
    obj_id = existing["Id"] if existing else realm.new_id(entity)
    obj: dict[str, Any] = {}
    if entity == "Customer":
        parent = None
        if payload.get("ParentRef"):
            parent = realm.ref("Customer", payload["ParentRef"], element="ParentRef")
        obj = {
            "Taxable": bool(payload.get("Taxable", True)) if realm.us else None,
            "Job": parent is not None,
            "BillWithParent": bool(payload.get("BillWithParent", False)),
            "ParentRef": {"value": parent["Id"]} if parent else None,
            "Level": parent.get("Level", 0) + 1 if parent else None,
            "Balance": existing["Balance"] if existing else 0,
            "BalanceWithJobs": existing["BalanceWithJobs"] if existing else 0,
            "CurrencyRef": dict(realm.currency),
            "PreferredDeliveryMethod": payload.get("PreferredDeliveryMethod", "Print"),
        }
        fqn = f"{parent['FullyQualifiedName']}:{name}" if parent else name
    elif entity == "Vendor":
        obj = {
            "Balance": existing["Balance"] if existing else 0,
            "Vendor1099": bool(payload.get("Vendor1099", False)),
            "CurrencyRef": dict(realm.currency),
        }
        fqn = None
    else:
        obj = {"BillableTime": bool(payload.get("BillableTime", False))}
        fqn = None
    obj.update(
        {
            "domain": "QBO",
            "sparse": False,
            "Id": obj_id,
            "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
            "MetaData": realm.meta(ts, existing),
        }
    )
    for key in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix", "CompanyName"):
        if isinstance(payload.get(key), str) and payload[key].strip():
            obj[key] = payload[key].strip()
    if fqn is not None:
        obj["FullyQualifiedName"] = fqn
    obj["DisplayName"] = name
    obj["PrintOnCheckName"] = payload.get("PrintOnCheckName") or obj.get("CompanyName") or name
    obj["Active"] = payload.get("Active", True) is not False
    for key in (
        "PrimaryPhone",
        "Mobile",
        "Fax",
        "PrimaryEmailAddr",
        "WebAddr",
        "BillAddr",
        "ShipAddr",
        "Notes",
    ):
        if payload.get(key):
            obj[key] = payload[key]
    for key in ("AcctNum", "TaxIdentifier", "EmployeeNumber", "PrimaryAddr", "HiredDate", "BirthDate"):
        if payload.get(key):
            obj[key] = payload[key]
    if entity == "Customer":
        if payload.get("SalesTermRef"):
            obj["SalesTermRef"] = {"value": realm.ref("Term", payload["SalesTermRef"], element="SalesTermRef")["Id"]}
        if realm.us:
            obj["DefaultTaxCodeRef"] = payload.get("DefaultTaxCodeRef") or {"value": realm.default_tax_code}
        elif payload.get("DefaultTaxCodeRef"):
            obj["DefaultTaxCodeRef"] = {
                "value": realm.ref("TaxCode", payload["DefaultTaxCodeRef"], element="DefaultTaxCodeRef")["Id"]
            }
    obj = {k: v for k, v in obj.items() if v is not None}
    if existing:
        realm.names.pop(existing["DisplayName"].strip().lower(), None)
    realm.names[name.lower()] = (entity, obj_id)
    return realm.put(entity, obj, ts, created=existing is None)


# -- items, accounts, classes, terms ----------------------------------------------------------
def save_item(realm: Realm, payload: dict, ts: float, *, update: bool) -> dict:
    """Create or update an Item (Service, NonInventory, Inventory, Category; sub-items)."""
    existing = None
    if update:
        existing, payload = _merge_for_update(realm, "Item", payload)
    name = (payload.get("Name") or "").strip()
    if not name:
        raise F.required("Name")
    item_type = payload.get("Type") or (existing or {}).get("Type") or "Service"
    if item_type not in ITEM_TYPES:
        raise QBOFault(
            "2120", "Invalid Type", f"Invalid Type : {item_type} is not a supported item type", element="Type"
        )
    if item_type == "Category" and not realm.categories_enabled:
        raise F.unsupported_operation("Unsupported Operation: Operation CREATE CATEGORY is not supported")
    parent = None
    if payload.get("ParentRef"):
        parent = realm.ref("Item", payload["ParentRef"], element="ParentRef")
    fqn = f"{parent['FullyQualifiedName']}:{name}" if parent else name
    hit = realm.item_names.get(fqn.lower())
    if hit is not None and (existing is None or hit != existing["Id"]):
        raise F.duplicate_name()
    obj: dict[str, Any] = {
        "Name": name,
        "Description": payload.get("Description"),
        "Active": payload.get("Active", True) is not False,
        "SubItem": parent is not None,
        "ParentRef": {"value": parent["Id"], "name": parent["Name"]} if parent else None,
        "Level": parent.get("Level", 0) + 1 if parent else None,
        "FullyQualifiedName": fqn,
        "Taxable": bool(payload.get("Taxable", False)) if realm.us and item_type != "Category" else None,
        "UnitPrice": num(to_decimal("Item", "UnitPrice", payload.get("UnitPrice", 0))),
        "Type": item_type,
    }
    if item_type == "Category":
        obj["UnitPrice"] = None
    else:
        obj["IncomeAccountRef"] = _account_ref(realm, payload.get("IncomeAccountRef"), "IncomeAccountRef")
        obj["PurchaseCost"] = num(to_decimal("Item", "PurchaseCost", payload.get("PurchaseCost", 0)))
        obj["TrackQtyOnHand"] = bool(payload.get("TrackQtyOnHand", False))
        if payload.get("ExpenseAccountRef"):
            obj["ExpenseAccountRef"] = _account_ref(realm, payload["ExpenseAccountRef"], "ExpenseAccountRef")
        if item_type == "Inventory":
            for key in ("AssetAccountRef", "ExpenseAccountRef", "QtyOnHand", "InvStartDate"):
                if payload.get(key) in (None, "", {}):
                    raise F.required(key)
            obj["AssetAccountRef"] = _account_ref(realm, payload["AssetAccountRef"], "AssetAccountRef")
            obj["QtyOnHand"] = num(to_decimal("Item", "QtyOnHand", payload["QtyOnHand"]))
            obj["InvStartDate"] = to_date("Item", "InvStartDate", payload["InvStartDate"]).isoformat()
            obj["TrackQtyOnHand"] = True
        if payload.get("SalesTaxCodeRef"):
            code = realm.ref("TaxCode", payload["SalesTaxCodeRef"], element="SalesTaxCodeRef")
            obj["SalesTaxCodeRef"] = {"value": code["Id"], "name": code["Name"]}
        if payload.get("Sku"):
            obj["Sku"] = payload["Sku"]
    obj.update(
        {
            "domain": "QBO",
            "sparse": False,
            "Id": existing["Id"] if existing else realm.new_id("Item"),
            "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
            "MetaData": realm.meta(ts, existing),
        }
    )
    obj = {k: v for k, v in obj.items() if v is not None}
    if existing:
        realm.item_names.pop(existing["FullyQualifiedName"].lower(), None)
    realm.item_names[fqn.lower()] = obj["Id"]
    return realm.put("Item", obj, ts, created=existing is None)


def _account_ref(realm: Realm, ref: Any, element: str) -> dict:
    account = realm.ref("Account", ref, element=element)
    return {"value": account["Id"], "name": account["Name"]}


def save_account(realm: Realm, payload: dict, ts: float, *, update: bool) -> dict:
    """Create or update an Account."""
    existing = None
    if update:
        existing, payload = _merge_for_update(realm, "Account", payload)
    name = (payload.get("Name") or "").strip()
    if not name:
        raise F.required("Name")
    account_type = payload.get("AccountType")
    if not account_type:
        raise F.required("AccountType")
    if account_type not in ACCOUNT_CLASSIFICATION:
        raise QBOFault("2120", "Invalid Type", f"Invalid Type : AccountType {account_type}", element="AccountType")
    parent = realm.ref("Account", payload["ParentRef"], element="ParentRef") if payload.get("ParentRef") else None
    if parent is not None and parent["AccountType"] != account_type:
        raise F.business("The sub-account must have the same account type as its parent account.", "ParentRef")
    fqn = f"{parent['FullyQualifiedName']}:{name}" if parent else name
    for other in realm.entities["Account"].values():
        if other["FullyQualifiedName"].lower() == fqn.lower() and (existing is None or other["Id"] != existing["Id"]):
            raise QBOFault(
                "6240",
                "Duplicate Name Exists Error",
                "The name supplied already exists. : Another account is already using this name. "
                "Please use a different name.",
                element=None,
            )
    obj = {
        "Name": name,
        "SubAccount": parent is not None,
        "ParentRef": {"value": parent["Id"]} if parent else None,
        "FullyQualifiedName": fqn,
        "Active": payload.get("Active", True) is not False,
        "Classification": ACCOUNT_CLASSIFICATION[account_type],
        "AccountType": account_type,
        "AccountSubType": payload.get("AccountSubType"),
        "AcctNum": payload.get("AcctNum"),
        "CurrentBalance": existing["CurrentBalance"] if existing else 0,
        "CurrentBalanceWithSubAccounts": existing["CurrentBalance"] if existing else 0,
        "CurrencyRef": dict(realm.currency),
        "domain": "QBO",
        "sparse": False,
        "Id": existing["Id"] if existing else realm.new_id("Account"),
        "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
        "MetaData": realm.meta(ts, existing),
    }
    return realm.put("Account", {k: v for k, v in obj.items() if v is not None}, ts, created=existing is None)


def save_class(realm: Realm, payload: dict, ts: float, *, update: bool) -> dict:
    """Create or update a Class."""
    existing = None
    if update:
        existing, payload = _merge_for_update(realm, "Class", payload)
    name = (payload.get("Name") or "").strip()
    if not name:
        raise F.required("Name")
    parent = realm.ref("Class", payload["ParentRef"], element="ParentRef") if payload.get("ParentRef") else None
    fqn = f"{parent['FullyQualifiedName']}:{name}" if parent else name
    for other in realm.entities["Class"].values():
        if other["FullyQualifiedName"].lower() == fqn.lower() and (existing is None or other["Id"] != existing["Id"]):
            raise F.duplicate_name()
    obj = {
        "Name": name,
        "SubClass": parent is not None,
        "ParentRef": {"value": parent["Id"]} if parent else None,
        "FullyQualifiedName": fqn,
        "Active": payload.get("Active", True) is not False,
        "domain": "QBO",
        "sparse": False,
        "Id": existing["Id"] if existing else realm.new_id("Class"),
        "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
        "MetaData": realm.meta(ts, existing),
    }
    return realm.put("Class", {k: v for k, v in obj.items() if v is not None}, ts, created=existing is None)


def save_term(realm: Realm, payload: dict, ts: float, *, update: bool) -> dict:
    """Create or update a Term (STANDARD with DueDays, or DATE_DRIVEN with DayOfMonthDue)."""
    existing = None
    if update:
        existing, payload = _merge_for_update(realm, "Term", payload)
    name = (payload.get("Name") or "").strip()
    if not name:
        raise F.required("Name")
    for other in realm.entities["Term"].values():
        if other["Name"].lower() == name.lower() and (existing is None or other["Id"] != existing["Id"]):
            raise F.duplicate_name()
    obj: dict[str, Any] = {"Name": name, "Active": payload.get("Active", True) is not False}
    if payload.get("DayOfMonthDue") is not None:
        obj["Type"] = "DATE_DRIVEN"
        obj["DayOfMonthDue"] = int(to_decimal("Term", "DayOfMonthDue", payload["DayOfMonthDue"]))
        obj["DueNextMonthDays"] = int(to_decimal("Term", "DueNextMonthDays", payload.get("DueNextMonthDays", 0)))
    else:
        if payload.get("DueDays") is None:
            raise F.required("DueDays")
        days = int(to_decimal("Term", "DueDays", payload["DueDays"]))
        if not 0 <= days <= 999:
            raise QBOFault(
                "2050",
                "String length/number is invalid",
                f"DueDays must be 0-999. Supplied value:{days}",
                element="DueDays",
            )
        obj["Type"] = "STANDARD"
        obj["DueDays"] = days
        obj["DiscountDays"] = int(to_decimal("Term", "DiscountDays", payload.get("DiscountDays", 0)))
        obj["DiscountPercent"] = num(to_decimal("Term", "DiscountPercent", payload.get("DiscountPercent", 0)))
    obj.update(
        {
            "domain": "QBO",
            "sparse": False,
            "Id": existing["Id"] if existing else realm.new_id("Term"),
            "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
            "MetaData": realm.meta(ts, existing),
        }
    )
    return realm.put("Term", obj, ts, created=existing is None)


# -- sales transactions -----------------------------------------------------------------------
def _tax_rates(realm: Realm, code: dict) -> list[tuple[dict, Decimal]]:
    rates = []
    for detail in code.get("SalesTaxRateList", {}).get("TaxRateDetail", []):
        rate = realm.get("TaxRate", detail["TaxRateRef"]["value"])
        if rate is not None:
            rates.append((rate, Decimal(str(rate["RateValue"]))))
    return rates


def _line_tax_code(realm: Realm, detail: dict) -> str:
    ref = detail.get("TaxCodeRef")
    value = ref.get("value") if isinstance(ref, dict) else None
    if realm.us:
        # US model (quickbooks-online.md §6): the line carries only the pseudo-code TAX or NON, default NON.
        value = value or "NON"
        if value not in ("TAX", "NON"):
            raise F.invalid_reference(
                f"Invalid Reference Id : TaxCode {value} is not valid on a line; use TAX or NON", "TaxCodeRef"
            )
        return value
    if not value:
        raise F.business("Make sure all your transactions have a VAT rate before you save.", "TaxCodeRef")
    code = realm.get("TaxCode", value)
    if code is None or code.get("Active") is False:
        raise F.invalid_reference(f"Invalid Reference Id : TaxCode {value} does not exist", "TaxCodeRef")
    return code["Id"]


def _build_lines(realm: Realm, entity: str, raw_lines: Any) -> list[dict]:
    if not isinstance(raw_lines, list):
        raise F.required("Line")
    lines: list[dict] = []
    for raw in raw_lines:
        if not isinstance(raw, dict):
            raise bad_line(entity)
        raw = strip_blank(raw)
        kind = raw.get("DetailType")
        if not kind:
            raise F.required("DetailType")
        if kind not in LINE_TYPES:
            raise QBOFault(
                "2010",
                "Request has invalid or unsupported property",
                "Property Name:Can not deserialize value of type "
                "com.intuit.schema.finance.v3.LineDetailTypeEnum "
                f'from String "{kind}" specified is unsupported or invalid',
                element=None,
            )
        if kind == "SubTotalLineDetail":
            continue  # QBO recomputes the subtotal line itself
        line: dict[str, Any] = {}
        if raw.get("Description"):
            line["Description"] = str(raw["Description"])
        if kind == "DescriptionOnly":
            line.update(
                {
                    "Amount": 0,
                    "DetailType": kind,
                    "DescriptionLineDetail": raw.get("DescriptionLineDetail", {}),
                }
            )
            lines.append(line)
            continue
        if kind == "DiscountLineDetail":
            detail = raw.get("DiscountLineDetail") or {}
            line.update(
                {
                    "DetailType": kind,
                    "DiscountLineDetail": {
                        "PercentBased": bool(detail.get("PercentBased", False)),
                        **({"DiscountPercent": detail["DiscountPercent"]} if "DiscountPercent" in detail else {}),
                    },
                }
            )
            line["_amount"] = to_decimal(entity, "Amount", raw.get("Amount", 0))
            lines.append(line)
            continue
        if kind == "GroupLineDetail":
            raise F.unsupported_operation("Operation GroupLineDetail is not supported by this company.")
        detail = raw.get("SalesItemLineDetail")
        if not isinstance(detail, dict):
            raise F.required("SalesItemLineDetail")
        item_ref = detail.get("ItemRef") or {"value": "1"}
        item = realm.get("Item", item_ref.get("value"))
        if item is None or item.get("Active") is False:
            raise F.invalid_reference(
                f"Invalid Reference Id : Item {item_ref.get('value')} does not exist or has been made inactive",
                "ItemRef",
            )
        if item["Type"] == "Category":
            # consolibyte/quickbooks-php#178: categories are never valid on a transaction line.
            raise F.invalid_reference("Invalid Reference Id : Categories cannot be used in transactions.", "ItemRef")
        qty = to_decimal(entity, "Qty", detail["Qty"]) if "Qty" in detail else None
        price = to_decimal(entity, "UnitPrice", detail["UnitPrice"]) if "UnitPrice" in detail else None
        if "Amount" in raw:
            amount = money(to_decimal(entity, "Amount", raw["Amount"]))
        elif qty is not None and price is not None:
            amount = money(qty * price)
        else:
            raise F.required("Amount")
        if qty and price and money(qty * price) != amount:
            # quickbooks-online.md §3 Invoice: Amount must equal UnitPrice*Qty rounded half-up; zeros skip it.
            raise QBOFault(
                "6070",
                "Amount is not equal to UnitPrice * Qty",
                f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount:,}",
                element="",
            )
        out_detail: dict[str, Any] = {"ItemRef": {"value": item["Id"], "name": item["Name"]}}
        if price is not None:
            out_detail["UnitPrice"] = num(price)
        if qty is not None:
            out_detail["Qty"] = num(qty)
        if detail.get("ClassRef") and realm.class_tracking_line:
            cls = realm.ref("Class", detail["ClassRef"], element="ClassRef")
            out_detail["ClassRef"] = {"value": cls["Id"], "name": cls["FullyQualifiedName"]}
        out_detail["TaxCodeRef"] = {"value": _line_tax_code(realm, detail)}
        if detail.get("ServiceDate"):
            out_detail["ServiceDate"] = to_date(entity, "ServiceDate", detail["ServiceDate"]).isoformat()
        if "Description" not in line and item.get("Description"):
            line["Description"] = item["Description"]
        line.update({"Amount": num(amount), "DetailType": kind, kind: out_detail, "_amount": amount})
        lines.append(line)
    if not any(line["DetailType"] == "SalesItemLineDetail" for line in lines):
        raise F.required("Line")
    return lines


def bad_line(entity: str) -> QBOFault:
    """Return the fault for a Line entry that is not an object."""
    return QBOFault(
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:Can not deserialize instance of com.intuit.schema.finance.v3.Line (class "
        f"com.intuit.schema.finance.v3.{entity}) specified is unsupported or invalid",
        element=None,
    )


def _compute_tax(realm: Realm, payload: dict, lines: list[dict], global_calc: str) -> tuple[dict, Decimal, Decimal]:
    """Return (TxnTaxDetail, net total, tax total) for the lines; amounts of lines may be rewritten."""
    sales = [line for line in lines if line["DetailType"] == "SalesItemLineDetail"]
    subtotal = sum((line["_amount"] for line in sales), Decimal(0))
    discount = sum((line["_amount"] for line in lines if line["DetailType"] == "DiscountLineDetail"), Decimal(0))
    given = (payload.get("TxnTaxDetail") or {}).get("TotalTax")
    if realm.us:
        taxable = sum(
            (line["_amount"] for line in sales if line["SalesItemLineDetail"]["TaxCodeRef"]["value"] == "TAX"),
            Decimal(0),
        )
        code_ref = (payload.get("TxnTaxDetail") or {}).get("TxnTaxCodeRef")
        if taxable == 0 and not code_ref:
            return {"TotalTax": 0}, subtotal - discount, Decimal(0)
        code = realm.ref("TaxCode", code_ref or {"value": realm.default_tax_code}, element="TxnTaxCodeRef")
        tax_lines, total_tax = [], Decimal(0)
        for rate, pct in _tax_rates(realm, code):
            amount = money(taxable * pct / 100)
            total_tax += amount
            tax_lines.append(_tax_line(rate, pct, amount, taxable))
        if given is not None:
            # AST honours an explicit TotalTax (blog 2017-12-11, quickbooks-online.md §6).
            total_tax = money(to_decimal("Invoice", "TotalTax", given))
        detail = {"TxnTaxCodeRef": {"value": code["Id"]}, "TotalTax": num(total_tax), "TaxLine": tax_lines}
        return detail, subtotal - discount, total_tax
    if global_calc == "NotApplicable":
        return {"TotalTax": 0}, subtotal - discount, Decimal(0)
    by_code: dict[str, Decimal] = {}
    for line in sales:
        code_id = line["SalesItemLineDetail"]["TaxCodeRef"]["value"]
        by_code[code_id] = by_code.get(code_id, Decimal(0)) + line["_amount"]
    tax_lines, total_tax, net_total = [], Decimal(0), Decimal(0)
    for code_id, amount in by_code.items():
        rates = _tax_rates(realm, realm.get("TaxCode", code_id))
        pct_sum = sum((pct for _r, pct in rates), Decimal(0))
        net = money(amount / (1 + pct_sum / 100)) if global_calc == "TaxInclusive" else amount
        net_total += net
        for rate, pct in rates:
            tax = money(net * pct / 100)
            total_tax += tax
            tax_lines.append(_tax_line(rate, pct, tax, net))
    if given is not None:
        total_tax = money(to_decimal("Invoice", "TotalTax", given))
    return {"TotalTax": num(total_tax), "TaxLine": tax_lines}, net_total - discount, total_tax


def _tax_line(rate: dict, pct: Decimal, amount: Decimal, base: Decimal) -> dict:
    return {
        "Amount": num(amount),
        "DetailType": "TaxLineDetail",
        "TaxLineDetail": {
            "TaxRateRef": {"value": rate["Id"]},
            "PercentBased": True,
            "TaxPercent": num(pct),
            "NetAmountTaxable": num(base),
        },
    }


def save_sales_txn(realm: Realm, entity: str, payload: dict, ts: float, *, update: bool, params: dict) -> dict:
    """Create or update an Invoice, CreditMemo, SalesReceipt or Estimate."""
    existing = None
    if update:
        existing, payload = _merge_for_update(realm, entity, payload)
        old_date = date.fromisoformat(existing["TxnDate"])
        realm.check_open_period(old_date)
    customer = None
    if payload.get("CustomerRef") or entity != "SalesReceipt":
        customer = realm.ref("Customer", payload.get("CustomerRef"), element="CustomerRef")
    lines = _build_lines(realm, entity, payload.get("Line"))
    txn_date = to_date(entity, "TxnDate", payload["TxnDate"]) if payload.get("TxnDate") else realm.today(ts)
    realm.check_open_period(txn_date)
    global_calc = payload.get("GlobalTaxCalculation") or "TaxExcluded"
    if global_calc not in ("TaxExcluded", "TaxInclusive", "NotApplicable"):
        raise bad_value(entity, "GlobalTaxCalculation", global_calc)
    tax_detail, net_total, total_tax = _compute_tax(realm, payload, lines, global_calc)
    total = money(net_total + total_tax)

    doc_number = payload.get("DocNumber")
    if (
        doc_number == "AUTO_GENERATE"
        or payload.get("AutoDocNumber") is True
        or (not doc_number and not realm.custom_txn_numbers and not existing)
    ):
        doc_number = str(realm.next_doc_number)
        while (entity, doc_number.lower()) in realm.doc_numbers:
            realm.next_doc_number += 1
            doc_number = str(realm.next_doc_number)
        realm.next_doc_number += 1
    elif not doc_number and existing:
        # A full update without DocNumber keeps the number (update/sales_receipt.yml).
        doc_number = existing.get("DocNumber")
    if doc_number:
        doc_number = str(doc_number)
        if len(doc_number) > 21:
            raise QBOFault(
                "2050",
                "String length is either shorter or longer than supported by specification",
                f"String length specified does not match the supported length. Min:0 Max:21 supplied:{len(doc_number)}",
                element="DocNumber",
            )
        holder = realm.doc_numbers.get((entity, doc_number.lower()))
        allow_dup = "allowduplicatedocnum" in params.get("include", "").lower()
        if holder is not None and (existing is None or holder != existing["Id"]) and not allow_dup:
            raise QBOFault(
                "6140",
                "Duplicate Document Number Error",
                "Duplicate Document Number Error : You must specify a different number. "
                "This number has already "
                f"been used. DocNumber={doc_number} is assigned to TxnType={entity} with TxnId={holder}",
                element="",
            )

    term = None
    if payload.get("SalesTermRef"):
        term = realm.ref("Term", payload["SalesTermRef"], element="SalesTermRef")
    elif customer and customer.get("SalesTermRef"):
        term = realm.get("Term", customer["SalesTermRef"]["value"])
    elif realm.preferences["SalesFormsPrefs"].get("DefaultTerms"):
        term = realm.get("Term", realm.preferences["SalesFormsPrefs"]["DefaultTerms"]["value"])

    obj_id = existing["Id"] if existing else realm.new_id(entity)
    obj: dict[str, Any] = {}
    if entity == "Invoice":
        obj.update(
            AllowIPNPayment=False,
            AllowOnlinePayment=False,
            AllowOnlineCreditCardPayment=False,
            AllowOnlineACHPayment=False,
        )
    obj.update(
        {
            "domain": "QBO",
            "sparse": False,
            "Id": obj_id,
            "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
            "MetaData": realm.meta(ts, existing),
        }
    )
    custom_fields = realm.preferences["SalesFormsPrefs"].get("CustomField")
    if custom_fields:
        obj["CustomField"] = payload.get("CustomField") or [
            {"DefinitionId": d["DefinitionId"], "Name": d["Name"], "Type": d["Type"]} for d in custom_fields
        ]
    if doc_number:
        obj["DocNumber"] = doc_number
    obj["TxnDate"] = txn_date.isoformat()
    obj["CurrencyRef"] = dict(realm.currency)
    if payload.get("PrivateNote"):
        obj["PrivateNote"] = str(payload["PrivateNote"])
    if entity in ("Invoice", "Estimate"):
        obj["LinkedTxn"] = existing.get("LinkedTxn", []) if existing else []
    header_class = payload.get("ClassRef")
    if header_class and realm.class_tracking_txn:
        cls = realm.ref("Class", header_class, element="ClassRef")
        obj["ClassRef"] = {"value": cls["Id"], "name": cls["FullyQualifiedName"]}
    out_lines = []
    for n, line in enumerate(lines, start=1):
        line = {k: v for k, v in line.items() if k != "_amount"}
        if line["DetailType"] == "DiscountLineDetail":
            line["Amount"] = num(money(sum(ln["_amount"] for ln in lines if ln["DetailType"] == "DiscountLineDetail")))
        out_lines.append({"Id": str(n), "LineNum": n, **line})
    subtotal = sum((ln["_amount"] for ln in lines if ln["DetailType"] == "SalesItemLineDetail"), Decimal(0))
    out_lines.append({"Amount": num(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    obj["Line"] = out_lines
    obj["TxnTaxDetail"] = tax_detail
    if customer is not None:
        obj["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
    if payload.get("CustomerMemo"):
        obj["CustomerMemo"] = payload["CustomerMemo"]
    for key in ("BillAddr", "ShipAddr"):
        if payload.get(key):
            obj[key] = payload[key]
        elif customer and customer.get(key):
            obj[key] = dict(customer[key])
    if not realm.us:
        obj["GlobalTaxCalculation"] = global_calc
    if term is not None:
        obj["SalesTermRef"] = {"value": term["Id"], "name": term["Name"]}
    if entity == "Invoice":
        due = (
            to_date(entity, "DueDate", payload["DueDate"]) if payload.get("DueDate") else realm.term_due(term, txn_date)
        )
        obj["DueDate"] = due.isoformat()
    obj["TotalAmt"] = num(total)
    obj["ApplyTaxAfterDiscount"] = bool(payload.get("ApplyTaxAfterDiscount", False))
    obj["PrintStatus"] = payload.get("PrintStatus") or "NeedToPrint"
    obj["EmailStatus"] = payload.get("EmailStatus") or (existing or {}).get("EmailStatus") or "NotSet"
    email = payload.get("BillEmail") or (
        {"Address": customer["PrimaryEmailAddr"]["Address"]} if customer and customer.get("PrimaryEmailAddr") else None
    )
    if email:
        obj["BillEmail"] = email
    if existing and existing.get("DeliveryInfo"):
        obj["DeliveryInfo"] = existing["DeliveryInfo"]
    paid = Decimal(0)
    if existing is not None and entity in ("Invoice", "CreditMemo"):
        before_total = Decimal(str(existing["TotalAmt"]))
        before_open = Decimal(str(existing.get("Balance", existing.get("RemainingCredit", 0))))
        paid = before_total - before_open
    if entity == "Invoice":
        obj["Balance"] = num(money(total - paid))
    elif entity == "CreditMemo":
        obj["RemainingCredit"] = num(money(total - paid))
        obj["Balance"] = obj["RemainingCredit"]
    elif entity == "SalesReceipt":
        obj["Balance"] = 0
        obj["DepositToAccountRef"] = payload.get("DepositToAccountRef") or _undeposited(realm)
    elif entity == "Estimate":
        obj["TxnStatus"] = payload.get("TxnStatus") or "Pending"
    if total < paid:
        raise F.business("The transaction total cannot be less than the amount already paid or applied.")

    if existing and existing.get("DocNumber"):
        realm.doc_numbers.pop((entity, existing["DocNumber"].lower()), None)
    if doc_number and (entity, doc_number.lower()) not in realm.doc_numbers:
        realm.doc_numbers[(entity, doc_number.lower())] = obj_id
    _adjust_customer(realm, entity, existing, obj, ts)
    return realm.put(entity, obj, ts, created=existing is None)


def _undeposited(realm: Realm) -> dict:
    for account in realm.entities["Account"].values():
        if account["Name"] == "Undeposited Funds":
            return {"value": account["Id"], "name": account["Name"]}
    return {"value": "4", "name": "Undeposited Funds"}


def _open_amount(entity: str, obj: dict | None) -> Decimal:
    """Return what ``obj`` contributes to its customer's balance."""
    if obj is None:
        return Decimal(0)
    if entity == "Invoice":
        return Decimal(str(obj.get("Balance", 0)))
    if entity == "CreditMemo":
        return -Decimal(str(obj.get("RemainingCredit", 0)))
    if entity == "Payment":
        return -Decimal(str(obj.get("UnappliedAmt", 0)))
    return Decimal(0)


def _adjust_customer(realm: Realm, entity: str, before: dict | None, after: dict | None, ts: float) -> None:
    delta = _open_amount(entity, after) - _open_amount(entity, before)
    if delta == 0:
        return
    ref = (after or before or {}).get("CustomerRef")
    customer = realm.entities["Customer"].get(ref["value"]) if ref else None
    if customer is None:
        return
    customer["Balance"] = num(money(Decimal(str(customer["Balance"])) + delta))
    customer["BalanceWithJobs"] = num(money(Decimal(str(customer["BalanceWithJobs"])) + delta))
    realm.changed["Customer"][customer["Id"]] = ts
    parent = customer.get("ParentRef")
    if parent and (top := realm.entities["Customer"].get(parent["value"])):
        top["BalanceWithJobs"] = num(money(Decimal(str(top["BalanceWithJobs"])) + delta))


# -- payments ---------------------------------------------------------------------------------
def _apply_links(realm: Realm, payment: dict, sign: int, ts: float) -> None:
    """Apply (sign=1) or release (sign=-1) the payment's lines on its invoices and credit memos."""
    for line in payment.get("Line", []):
        amount = Decimal(str(line["Amount"]))
        for link in line.get("LinkedTxn", []):
            entity = link["TxnType"]
            target = realm.entities.get(entity, {}).get(link["TxnId"])
            if target is None:
                continue
            before = dict(target)
            key = "Balance" if entity == "Invoice" else "RemainingCredit"
            target[key] = num(money(Decimal(str(target[key])) - sign * amount))
            if entity == "CreditMemo":
                target["Balance"] = target[key]
            links = [lt for lt in target.get("LinkedTxn", []) if lt["TxnId"] != payment["Id"]]
            if sign > 0:
                links.append({"TxnId": payment["Id"], "TxnType": "Payment"})
            target["LinkedTxn"] = links
            # Applying a payment bumps the invoice's SyncToken (quickbooks-online.md §3, breeze#4624).
            realm.bump(entity, target, ts)
            _adjust_customer(realm, entity, before, target, ts)


def save_payment(realm: Realm, payload: dict, ts: float, *, update: bool) -> dict:
    """Create or update a Payment applied to invoices (and credit memos) through LinkedTxn."""
    existing = None
    if update:
        existing, payload = _merge_for_update(realm, "Payment", payload)
        realm.check_open_period(date.fromisoformat(existing["TxnDate"]))
    customer = realm.ref("Customer", payload.get("CustomerRef"), element="CustomerRef")
    if payload.get("TotalAmt") is None:
        raise F.required("TotalAmt")
    total = money(to_decimal("Payment", "TotalAmt", payload["TotalAmt"]))
    txn_date = to_date("Payment", "TxnDate", payload["TxnDate"]) if payload.get("TxnDate") else realm.today(ts)
    realm.check_open_period(txn_date)
    lines, applied = [], Decimal(0)
    pending: dict[tuple[str, str], Decimal] = {}
    for raw in payload.get("Line") or []:
        raw = strip_blank(raw)
        amount = money(to_decimal("Payment", "Amount", raw.get("Amount", 0)))
        links = []
        for link in raw.get("LinkedTxn") or []:
            kind, txn_id = link.get("TxnType"), str(link.get("TxnId", ""))
            if kind not in ("Invoice", "CreditMemo"):
                raise F.business(f"You can only link a payment to an invoice or credit memo, not {kind}.", "LinkedTxn")
            target = realm.get(kind, txn_id)
            if target is None:
                raise F.not_found()
            if target["CustomerRef"]["value"] != customer["Id"]:
                raise F.business(f"The {kind} {txn_id} belongs to another customer.", "LinkedTxn")
            open_amount = Decimal(str(target["Balance"] if kind == "Invoice" else target["RemainingCredit"]))
            if existing:
                for old in existing.get("Line", []):
                    if any(lt["TxnId"] == txn_id and lt["TxnType"] == kind for lt in old.get("LinkedTxn", [])):
                        open_amount += Decimal(str(old["Amount"]))
            pending[(kind, txn_id)] = pending.get((kind, txn_id), Decimal(0)) + amount
            if pending[(kind, txn_id)] > open_amount:
                raise F.business(
                    f"The amount applied to {kind} {txn_id} ({pending[(kind, txn_id)]}) exceeds its "
                    "open balance "
                    f"({open_amount}).",
                    "Line",
                )
            links.append({"TxnId": txn_id, "TxnType": kind})
            applied += amount if kind == "Invoice" else -amount
        lines.append({"Amount": num(amount), "LinkedTxn": links})
    if applied > total:
        raise F.business("The payment amount is less than the amount applied to transactions.", "TotalAmt")
    obj = {
        "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
        "DepositToAccountRef": payload.get("DepositToAccountRef") or _undeposited(realm),
        "TotalAmt": num(total),
        "UnappliedAmt": num(total - applied),
        "ProcessPayment": False,
        "domain": "QBO",
        "sparse": False,
        "Id": existing["Id"] if existing else realm.new_id("Payment"),
        "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
        "MetaData": realm.meta(ts, existing),
        "TxnDate": txn_date.isoformat(),
        "CurrencyRef": dict(realm.currency),
        "Line": lines,
    }
    for key in ("PaymentRefNum", "PrivateNote", "PaymentMethodRef"):
        if payload.get(key):
            obj[key] = payload[key]
    if existing:
        _apply_links(realm, existing, -1, ts)
        _adjust_customer(realm, "Payment", existing, None, ts)
    _apply_links(realm, obj, 1, ts)
    _adjust_customer(realm, "Payment", None, obj, ts)
    return realm.put("Payment", obj, ts, created=existing is None)


# -- delete / void / send -----------------------------------------------------------------------
def _check_delete_target(realm: Realm, entity: str, payload: dict) -> dict:
    if "Id" not in payload:
        raise F.required("Id")
    obj = realm.get(entity, payload["Id"])
    if obj is None:
        raise F.not_found()
    if entity != "Attachable":
        if "SyncToken" not in payload:
            raise F.required("SyncToken")
        if str(payload["SyncToken"]) != obj["SyncToken"]:
            raise F.stale_object(realm.last_writer)
    if entity in (*SALES_TXNS, "Payment"):
        realm.check_open_period(date.fromisoformat(obj["TxnDate"]))
    return obj


def _unlink_payments(realm: Realm, entity: str, obj: dict, ts: float) -> None:
    """Detach payments from a voided/deleted invoice or credit memo (they become unapplied)."""
    for link in obj.get("LinkedTxn", []):
        if link["TxnType"] != "Payment":
            continue
        payment = realm.entities["Payment"].get(link["TxnId"])
        if payment is None:
            continue
        before = dict(payment)
        kept, applied = [], Decimal(0)
        for line in payment["Line"]:
            if any(lt["TxnId"] == obj["Id"] and lt["TxnType"] == entity for lt in line.get("LinkedTxn", [])):
                continue
            kept.append(line)
            for lt in line.get("LinkedTxn", []):
                applied += Decimal(str(line["Amount"])) * (1 if lt["TxnType"] == "Invoice" else -1)
        payment["Line"] = kept
        payment["UnappliedAmt"] = num(money(Decimal(str(payment["TotalAmt"])) - applied))
        realm.bump("Payment", payment, ts)
        _adjust_customer(realm, "Payment", before, payment, ts)


def delete(realm: Realm, entity: str, payload: dict, ts: float) -> dict:
    """Delete a transaction or attachable; name-list entities can only be made inactive."""
    if entity in NAME_ENTITIES or entity in ("Item", "Account", "Class", "Term", *READ_ONLY_TAX):
        raise F.unsupported_operation(f"Operation Delete is not supported for {entity}. Set Active to false.")
    obj = _check_delete_target(realm, entity, payload)
    if entity == "Payment":
        _apply_links(realm, obj, -1, ts)
        _adjust_customer(realm, "Payment", obj, None, ts)
    elif entity in ("Invoice", "CreditMemo"):
        _unlink_payments(realm, entity, obj, ts)
        obj = realm.entities[entity][obj["Id"]]
        _adjust_customer(realm, entity, obj, None, ts)
    if obj.get("DocNumber"):
        realm.doc_numbers.pop((entity, obj["DocNumber"].lower()), None)
    if entity == "Attachable":
        realm.attachments.pop(obj["Id"], None)
    return realm.remove(entity, obj["Id"], ts)


def void(realm: Realm, entity: str, payload: dict, ts: float) -> dict:
    """Void a transaction: amounts become 0, PrivateNote "Voided", SyncToken+1 (void/invoice.yml)."""
    if entity not in ("Invoice", "CreditMemo", "SalesReceipt", "Payment"):
        raise F.unsupported_operation(f"Operation Void is not supported for {entity}.")
    obj = _check_delete_target(realm, entity, payload)
    before = dict(obj)
    if entity == "Payment":
        _apply_links(realm, obj, -1, ts)
        _adjust_customer(realm, "Payment", obj, None, ts)
        obj["Line"] = []
        obj["TotalAmt"] = 0
        obj["UnappliedAmt"] = 0
    else:
        if entity in ("Invoice", "CreditMemo"):
            _unlink_payments(realm, entity, obj, ts)
            before = dict(obj)
        for line in obj["Line"]:
            line["Amount"] = 0
        obj["TxnTaxDetail"] = {"TotalTax": 0}
        obj["TotalAmt"] = 0
        if entity == "Invoice":
            obj["Balance"] = 0
        elif entity == "CreditMemo":
            obj["RemainingCredit"] = 0
            obj["Balance"] = 0
        _adjust_customer(realm, entity, before, obj, ts)
    obj["PrivateNote"] = "Voided"
    realm.bump(entity, obj, ts)
    return obj


def send(realm: Realm, entity: str, obj_id: str, send_to: str | None, ts: float) -> dict:
    """Mark a sales form e-mailed (invoice_send.xml): EmailStatus, DeliveryInfo, BillEmail."""
    obj = realm.get(entity, obj_id)
    if obj is None:
        raise F.not_found()
    address = send_to or (obj.get("BillEmail") or {}).get("Address")
    if not address:
        raise F.business(
            "Email address is missing. Please provide an email address to send the transaction to.",
            "BillEmail",
        )
    if "@" not in address or " " in address.strip():
        raise F.business(f"Invalid email address: {address}", "BillEmail")
    obj["BillEmail"] = {"Address": address}
    obj["EmailStatus"] = "EmailSent"
    obj["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": realm.stamp(ts)}
    realm.bump(entity, obj, ts)
    return obj


def bad_value(entity: str, name: str, value: Any) -> QBOFault:
    """Return the 2010 fault for an enum value QBO does not know."""
    return QBOFault(
        "2010",
        "Request has invalid or unsupported property",
        f'Property Name:Can not deserialize value of type {name} from String "{value}" '
        f"(class com.intuit.schema.finance.v3.{entity}) specified is unsupported or invalid",
        element=None,
    )


def save(realm: Realm, entity: str, payload: dict, ts: float, *, params: dict) -> dict:
    """Dispatch a create (no Id) or update (Id present) of ``entity``.

    :raise QBOFault: for every validation rule of the entity.
    """
    if not isinstance(payload, dict):
        raise F.required(entity)
    payload = strip_blank(payload)
    _check_props(entity, payload)
    update = "Id" in payload
    if entity in NAME_ENTITIES:
        return save_name(realm, entity, payload, ts, update=update)
    if entity == "Item":
        return save_item(realm, payload, ts, update=update)
    if entity == "Account":
        return save_account(realm, payload, ts, update=update)
    if entity == "Class":
        return save_class(realm, payload, ts, update=update)
    if entity == "Term":
        return save_term(realm, payload, ts, update=update)
    if entity in SALES_TXNS:
        return save_sales_txn(realm, entity, payload, ts, update=update, params=params)
    if entity == "Payment":
        return save_payment(realm, payload, ts, update=update)
    if entity == "Attachable":
        return save_note(realm, payload, ts, update=update)
    raise F.unsupported_operation(
        f"Operation {'Update' if update else 'Create'} is not supported for {entity}; "
        "tax codes are created through /taxservice/taxcode."
    )


def check_attachable_refs(realm: Realm, refs: Any) -> list[dict]:
    """Validate AttachableRef entries; return them normalised.

    :raise QBOFault: 6000 when a linked entity does not exist (attachment/error_estimate.yml).
    """
    out = []
    for ref in refs or []:
        entity_ref = (ref or {}).get("EntityRef") or {}
        kind, value = entity_ref.get("type"), str(entity_ref.get("value", ""))
        if kind not in realm.entities or realm.get(kind, value) is None:
            raise F.business(f"The entity {kind} {value} that you are trying to link does not exist. {kind} {value}")
        out.append(
            {
                "EntityRef": {"value": value, "type": kind},
                "IncludeOnSend": bool(ref.get("IncludeOnSend", False)),
            }
        )
    return out


def save_note(realm: Realm, payload: dict, ts: float, *, update: bool, file: dict | None = None) -> dict:
    """Create or update an Attachable (a note, or the metadata of an uploaded file)."""
    existing = None
    if update:
        existing, payload = _merge_for_update(realm, "Attachable", payload)
    refs = check_attachable_refs(realm, payload.get("AttachableRef"))
    obj: dict[str, Any] = {}
    if file is not None:
        obj.update(file)
    elif existing:
        for key in ("FileName", "FileAccessUri", "TempDownloadUri", "Size", "ContentType"):
            if key in existing:
                obj[key] = existing[key]
    elif not payload.get("Note"):
        raise F.required("Note")
    obj.update(
        {
            "domain": "QBO",
            "sparse": False,
            "Id": existing["Id"] if existing else file.get("_id") if file else realm.new_id("Attachable"),
            "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
            "MetaData": realm.meta(ts, existing),
        }
    )
    obj.pop("_id", None)
    if payload.get("Note"):
        obj["Note"] = payload["Note"]
    obj["AttachableRef"] = refs
    return realm.put("Attachable", obj, ts, created=existing is None)


def due_in(days: int, today: date) -> str:
    """Return ``today`` + ``days`` as ISO text."""
    return (today + timedelta(days=days)).isoformat()
