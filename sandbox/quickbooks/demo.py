"""Default demo data: a US company and a UK company, their users and preferences.

Records are seeded at different moments of the company's past, as a real company's were: the
chart of accounts, taxes and terms when the company was set up, items and names over the
following months, the invoices and the payment in the last weeks. So ``CreateTime`` and
``LastUpdatedTime`` differ from record to record, and a reader asking for what changed since a
moment (a query on ``MetaData.LastUpdatedTime``, change data capture) gets only part of them.
"""

from __future__ import annotations

from . import ops
from .ledger import Realm

US_REALM = "9341453908059321"
UK_REALM = "9341453908061187"
DAY = 86_400.0


def ago(now: float, days: float, minutes: float = 0) -> float:
    """Return the moment ``days`` (plus ``minutes``) before ``now`` (the reset instant)."""
    return now - days * DAY + minutes * 60


#: Demo users who can "sign in" on the consent page; ``realms`` are the companies they may connect.
USERS = {
    "u-ada": {"name": "Ada Admin", "email": "ada@ledgerlink.test", "realms": [US_REALM, UK_REALM]},
    "u-bob": {"name": "Bob Bookkeeper", "email": "bob@ledgerlink.test", "realms": [US_REALM]},
    "u-uma": {"name": "Uma Underhill", "email": "uma@ledgerlink.test", "realms": [UK_REALM]},
}


def _preferences(realm: Realm, *, class_tracking: bool, currency: str) -> dict:
    return {
        "AccountingInfoPrefs": {
            "TrackDepartments": False,
            "DepartmentTerminology": "Location",
            "ClassTrackingPerTxn": False,
            "ClassTrackingPerTxnLine": class_tracking,
            "CustomerTerminology": "Customers",
            "BookCloseDate": None,
        },
        "ProductAndServicesPrefs": {
            "ForSales": True,
            "ForPurchase": True,
            "QuantityWithPriceAndRate": True,
            "QuantityOnHand": True,
        },
        "SalesFormsPrefs": {
            "CustomField": [{"DefinitionId": "1", "Name": "Crew #", "Type": "StringType"}] if realm.us else [],
            "CustomTxnNumbers": False,
            "AllowDelayedCharges": False,
            "AllowDiscount": True,
            "DefaultDiscountAccount": "86",
            "AllowDeposit": True,
            "AllowShipping": False,
            "AllowServiceDate": False,
            "AllowEstimates": True,
            "EstimateMessage": "Thank you for your business and have a great day!",
            "ETransactionEnabledStatus": "NotApplicable",
            "DefaultTerms": {"value": "3"},
            "AutoApplyCredit": True,
            "AutoApplyPayments": True,
            "PrintItemWithZeroAmount": True,
            "UsingProgressInvoicing": False,
            "DefaultCustomerMessage": "Thank you for your business and have a great day!",
        },
        "EmailMessagesPrefs": {
            "InvoiceMessage": {
                "Subject": "Invoice from " + realm.name,
                "Message": "Your invoice is attached.",
            },
        },
        "VendorAndPurchasesPrefs": {"TrackingByCustomer": True, "BillableExpenseTracking": True},
        "TimeTrackingPrefs": {"UseServices": True, "BillCustomers": True, "WorkWeekStartDate": "Monday"},
        "TaxPrefs": {
            "UsingSalesTax": True,
            **({"PartnerTaxEnabled": True, "TaxGroupCodeRef": {"value": "2"}} if realm.us else {}),
        },
        "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": currency}},
        "ReportPrefs": {"ReportBasis": "Accrual", "CalcAgingReportFromTxnDate": False},
        "OtherPrefs": {
            "NameValue": [
                {"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": "Thank you for your business"},
                {"Name": "WarnDuplicateCheckNumber", "Value": "true"},
                {"Name": "WarnDuplicateBillNumber", "Value": "false"},
            ]
        },
        "domain": "QBO",
        "sparse": False,
        "Id": "1",
        "SyncToken": "0",
    }


def _company_info(realm: Realm, addr: dict, phone: str, email: str, start: str, fiscal: str) -> dict:
    return {
        "CompanyName": realm.name,
        "LegalName": realm.name,
        "CompanyAddr": {"Id": "1", **addr},
        "CustomerCommunicationAddr": {"Id": "1", **addr},
        "LegalAddr": {"Id": "1", **addr},
        "PrimaryPhone": {"FreeFormNumber": phone},
        "CompanyStartDate": start,
        "FiscalYearStartMonth": fiscal,
        "Country": realm.country,
        "Email": {"Address": email},
        "WebAddr": {},
        "SupportedLanguages": "en",
        "NameValue": [
            {"Name": "NeoEnabled", "Value": "true"},
            {"Name": "IndustryType", "Value": "Software / IT services"},
            {"Name": "CompanyType", "Value": "Corporation"},
            {"Name": "SubscriptionStatus", "Value": "PAID"},
            {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
        ],
        "domain": "QBO",
        "sparse": False,
        "Id": "1",
        "SyncToken": "3",
        "MetaData": {
            "CreateTime": "2021-03-01T09:12:40-08:00",
            "LastUpdatedTime": "2025-11-02T10:01:12-08:00",
        },
    }


def _accounts(realm: Realm, ts: float, rows: list[tuple[str, str, str]]) -> None:
    for i, (name, account_type, sub_type) in enumerate(rows):
        ops.save_account(
            realm,
            {"Name": name, "AccountType": account_type, "AccountSubType": sub_type},
            ts + i * 90,
            update=False,
        )


def _tax(realm: Realm, ts: float, rates: list[tuple[str, float]], codes: list[tuple[str, list[int]]]) -> None:
    for i, (name, value) in enumerate(rates, start=1):
        at = ts + i * 60
        realm.put(
            "TaxRate",
            {
                "Name": name,
                "Description": name,
                "Active": True,
                "RateValue": value,
                "AgencyRef": {"value": "1"},
                "SpecialTaxType": "NONE",
                "DisplayType": "ReadOnly",
                "EffectiveTaxRate": [{"RateValue": value, "EffectiveDate": "2015-01-01T00:00:00-08:00"}],
                "domain": "QBO",
                "sparse": False,
                "Id": str(i),
                "SyncToken": "0",
                "MetaData": realm.meta(at),
            },
            at,
        )
    for i, (name, rate_ids) in enumerate(codes, start=2):
        at = ts + (len(rates) + i) * 60
        realm.put(
            "TaxCode",
            {
                "Name": name,
                "Description": name,
                "Active": True,
                "Hidden": False,
                "Taxable": bool(rate_ids),
                "TaxGroup": len(rate_ids) > 1,
                "SalesTaxRateList": {
                    "TaxRateDetail": [
                        {
                            "TaxRateRef": {"value": str(r), "name": rates[r - 1][0]},
                            "TaxTypeApplicable": "TaxOnAmount",
                            "TaxOrder": 0,
                        }
                        for r in rate_ids
                    ]
                },
                "PurchaseTaxRateList": {"TaxRateDetail": []},
                "domain": "QBO",
                "sparse": False,
                "Id": str(i),
                "SyncToken": "0",
                "MetaData": realm.meta(at),
            },
            at,
        )


def _terms(realm: Realm, ts: float) -> None:
    terms = (
        {"Name": "Due on receipt", "DueDays": 0},
        {"Name": "Net 15", "DueDays": 15},
        {"Name": "Net 30", "DueDays": 30},
        {"Name": "Net 60", "DueDays": 60},
        {"Name": "15th of next month", "DayOfMonthDue": 15},
    )
    for i, body in enumerate(terms):
        ops.save_term(realm, body, ts + i * 45, update=False)


def build_us(ts: float) -> Realm:
    """Build the US company: sales tax with TAX/NON lines, class tracking per line on."""
    realm = Realm(US_REALM, "Ledgerlink Demo Inc.", "US", "America/Los_Angeles", ("USD", "United States Dollar"))
    realm.default_tax_code = "2"
    realm.users = ["u-ada", "u-bob"]
    realm.last_writer = "Ada Admin"
    realm.preferences = _preferences(realm, class_tracking=True, currency="USD")
    realm.company_info = _company_info(
        realm,
        {
            "Line1": "2600 Marine Way",
            "City": "Mountain View",
            "CountrySubDivisionCode": "CA",
            "PostalCode": "94043",
            "Country": "USA",
        },
        "(650) 555-0100",
        "billing@ledgerlink-demo.test",
        "2021-03-01",
        "January",
    )
    _accounts(
        realm,
        ago(ts, 640),
        [
            ("Services", "Income", "ServiceFeeIncome"),
            ("Sales of Product Income", "Income", "SalesOfProductIncome"),
            ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
            ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
            ("Checking", "Bank", "Checking"),
            ("Advertising", "Expense", "AdvertisingPromotional"),
        ],
    )
    _tax(
        realm,
        ago(ts, 640, 30),
        [
            ("California", 8.0),
            ("Arizona", 6.5),
            ("New York State", 4.0),
            ("New York City", 4.5),
            ("MCTD", 0.375),
            ("Texas State", 6.25),
            ("Austin", 2.0),
        ],
        # Combined codes (state + city + district) are computed per rate and rounded per rate (quickbooks-online.md §6).
        [("California", [1]), ("Arizona", [2]), ("New York City", [3, 4, 5]), ("Austin TX", [6, 7])],
    )
    _terms(realm, ago(ts, 640, 45))
    for i, name in enumerate(("Retail", "Wholesale", "Online")):
        ops.save_class(realm, {"Name": name}, ago(ts, 600 - 150 * i), update=False)
    items: list[dict] = [
        {"Name": "Services", "Type": "Service", "IncomeAccountRef": {"value": "1"}},
        {
            "Name": "Hours",
            "Type": "Service",
            "UnitPrice": 75,
            "IncomeAccountRef": {"value": "1"},
            "Description": "Consulting hours",
        },
        {"Name": "Hardware", "Type": "Category"},
        {
            "Name": "Cables",
            "Type": "NonInventory",
            "UnitPrice": 12.5,
            "Taxable": True,
            "IncomeAccountRef": {"value": "2"},
            "ParentRef": {"value": "3"},
            "Sku": "CBL-01",
        },
        {
            "Name": "Rock Fountain",
            "Type": "NonInventory",
            "UnitPrice": 275,
            "Taxable": True,
            "IncomeAccountRef": {"value": "2"},
        },
        {
            "Name": "Old Widget",
            "Type": "NonInventory",
            "UnitPrice": 5,
            "IncomeAccountRef": {"value": "2"},
            "Active": False,
        },
    ]
    for i, body in enumerate(items):
        ops.save_item(realm, body, ago(ts, 520 - 70 * i, 17 * i), update=False)
    customers: list[dict] = [
        {
            "DisplayName": "Amy's Bird Sanctuary",
            "GivenName": "Amy",
            "FamilyName": "Lauterbach",
            "CompanyName": "Amy's Bird Sanctuary",
            "PrimaryEmailAddr": {"Address": "Birds@Intuit.com"},
            "BillAddr": {
                "Line1": "4581 Finch St.",
                "City": "Bayshore",
                "CountrySubDivisionCode": "CA",
                "PostalCode": "94326",
            },
        },
        {
            "DisplayName": "Bill's Windsurf Shop",
            "CompanyName": "Bill's Windsurf Shop",
            "PrimaryEmailAddr": {"Address": "Surf@Intuit.com"},
            "Taxable": False,
        },
        {
            "DisplayName": "cool cars",
            "CompanyName": "Cool Cars ",
            "PrimaryEmailAddr": {"Address": " COOL@cars.test "},
        },
        {"DisplayName": "Dukes Basketball Camp", "PrimaryEmailAddr": {"Address": "Dukes_bball@intuit.com"}},
        {
            "DisplayName": "Freeman Sporting Goods",
            "CompanyName": "Freeman Sporting Goods",
            "PrimaryEmailAddr": {"Address": "Sporting_goods@intuit.com, accounts@freeman.test"},
        },
        {"DisplayName": "55 Twin Lane", "ParentRef": {"value": "5"}, "BillWithParent": True},
        {"DisplayName": "Jeff's Jalopies", "Active": False},
    ]
    for i, body in enumerate(customers):
        ops.save_name(realm, "Customer", body, ago(ts, 480 - 60 * i, 23 * i), update=False)
    ops.save_name(
        realm,
        "Vendor",
        {"DisplayName": "Books by Bessie", "CompanyName": "Books by Bessie"},
        ago(ts, 455),
        update=False,
    )
    ops.save_name(
        realm,
        "Vendor",
        {
            "DisplayName": "Robertson & Associates",
            "CompanyName": "Robertson & Associates",
            "GivenName": "Jenny",
            "FamilyName": "Robertson",
        },
        ago(ts, 95),
        update=False,
    )
    ops.save_name(realm, "Employee", {"GivenName": "Emily", "FamilyName": "Platt"}, ago(ts, 610), update=False)
    inv = ops.save_sales_txn(
        realm,
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [
                {
                    "Amount": 150,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 2, "UnitPrice": 75},
                }
            ],
        },
        ago(ts, 24, 75),
        update=False,
        params={},
    )
    ops.save_sales_txn(
        realm,
        "Invoice",
        {
            "CustomerRef": {"value": "4"},
            "Line": [
                {
                    "Amount": 275,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": "5"},
                        "Qty": 1,
                        "UnitPrice": 275,
                        "TaxCodeRef": {"value": "TAX"},
                    },
                }
            ],
        },
        ago(ts, 11, 130),
        update=False,
        params={},
    )
    ops.save_payment(
        realm,
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": 50,
            "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
        ago(ts, 5, 40),
        update=False,
    )
    # An edit made yesterday: the customer's record moved on, nothing else did.
    realm.bump("Customer", realm.entities["Customer"]["3"], ago(ts, 1, 200))
    return realm


def build_uk(ts: float) -> Realm:
    """Build the UK company: VAT codes required on every line, class tracking off."""
    realm = Realm(UK_REALM, "Ledgerlink Demo Ltd", "GB", "Europe/London", ("GBP", "British Pound Sterling"))
    realm.default_tax_code = None
    realm.users = ["u-ada", "u-uma"]
    realm.last_writer = "Uma Underhill"
    realm.preferences = _preferences(realm, class_tracking=False, currency="GBP")
    realm.company_info = _company_info(
        realm,
        {"Line1": "1 Canal Street", "City": "Manchester", "PostalCode": "M1 3HE", "Country": "GBR"},
        "+44 161 555 0100",
        "accounts@ledgerlink-demo.test",
        "2022-04-01",
        "April",
    )
    _accounts(
        realm,
        ago(ts, 410),
        [
            ("Sales", "Income", "SalesOfProductIncome"),
            ("Consulting Income", "Income", "ServiceFeeIncome"),
            ("Debtors", "Accounts Receivable", "AccountsReceivable"),
            ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
            ("Office costs", "Expense", "OfficeGeneralAdministrativeExpenses"),
        ],
    )
    _tax(
        realm,
        ago(ts, 410, 20),
        [("20.0% S", 20.0), ("5.0% R", 5.0), ("0.0% Z", 0.0), ("Exempt", 0.0)],
        [("20.0% S", [1]), ("5.0% R", [2]), ("0.0% Z", [3]), ("Exempt", [4]), ("No VAT", [])],
    )
    _terms(realm, ago(ts, 410, 40))
    for i, name in enumerate(("Consulting", "Training")):
        ops.save_class(realm, {"Name": name}, ago(ts, 390 - 200 * i), update=False)
    items: list[dict] = [
        {
            "Name": "Consulting",
            "Type": "Service",
            "UnitPrice": 120,
            "IncomeAccountRef": {"value": "2"},
            "SalesTaxCodeRef": {"value": "2"},
        },
        {
            "Name": "Training day",
            "Type": "Service",
            "UnitPrice": 650,
            "IncomeAccountRef": {"value": "2"},
            "SalesTaxCodeRef": {"value": "2"},
        },
        {"Name": "Publications", "Type": "Category"},
        {
            "Name": "Handbook",
            "Type": "NonInventory",
            "UnitPrice": 25,
            "IncomeAccountRef": {"value": "1"},
            "ParentRef": {"value": "3"},
            "SalesTaxCodeRef": {"value": "4"},
        },
        {
            "Name": "Energy surcharge",
            "Type": "NonInventory",
            "UnitPrice": 10,
            "IncomeAccountRef": {"value": "1"},
            "SalesTaxCodeRef": {"value": "3"},
        },
    ]
    for i, body in enumerate(items):
        ops.save_item(realm, body, ago(ts, 380 - 65 * i, 11 * i), update=False)
    customers: list[dict] = [
        {
            "DisplayName": "Acme Widgets Ltd",
            "CompanyName": "Acme Widgets Ltd",
            "PrimaryEmailAddr": {"Address": "ap@acme-widgets.test"},
            "BillAddr": {
                "Line1": "12 High Street",
                "City": "Leeds",
                "PostalCode": "LS1 4AB",
                "Country": "GB",
            },
        },
        {"DisplayName": "Brighton Bakery", "GivenName": "Bea", "FamilyName": "Baker"},
        {
            "DisplayName": "O'Neill & Sons",
            "CompanyName": "O'Neill & Sons",
            "PrimaryEmailAddr": {"Address": "Accounts@ONeill.test"},
        },
        {"DisplayName": "Zed Holdings", "Active": False},
    ]
    for i, body in enumerate(customers):
        ops.save_name(realm, "Customer", body, ago(ts, 350 - 80 * i, 29 * i), update=False)
    ops.save_sales_txn(
        realm,
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [
                {
                    "Amount": 240,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": "1"},
                        "Qty": 2,
                        "UnitPrice": 120,
                        "TaxCodeRef": {"value": "2"},
                    },
                }
            ],
        },
        ago(ts, 16, 310),
        update=False,
        params={},
    )
    return realm
