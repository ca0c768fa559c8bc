"""QBO Fault bodies: the ValidationFault envelope, the gateway's lowercase 401/403 shape, throttling.

Shapes follow quickbooks-online.md §4 and minimul/qbo_api's recorded errors (``spec/vcr/error/``).
"""

from __future__ import annotations

#: Generic message QBO uses for every 6000 business validation error (quickbooks-online.md §4).
BUSINESS_MESSAGE = "A business validation error has occurred while processing your request"
OBJECT_NOT_FOUND_DETAIL = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)


class QBOFault(Exception):
    """One QBO Fault to answer with: HTTP status, fault type and its Error entries."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str,
        *,
        element: str | None = "",
        status: int = 400,
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def body(self) -> dict:
        """Return the ``Fault`` object (without ``time``)."""
        error = {"Message": self.message, "Detail": self.detail, "code": self.code}
        if self.element is not None:
            error["element"] = self.element
        return {"Error": [error], "type": self.fault_type}


def business(detail: str, element: str = "") -> QBOFault:
    """Return a 6000 business validation fault with ``detail``."""
    return QBOFault("6000", BUSINESS_MESSAGE, f"Business Validation Error: {detail}", element=element)


def not_found() -> QBOFault:
    """Return the 610 fault QBO gives for a missing or inactive Id."""
    return QBOFault("610", "Object Not Found", OBJECT_NOT_FOUND_DETAIL)


def required(name: str) -> QBOFault:
    """Return the 2020 fault for a missing required field."""
    return QBOFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {name} is missing in the request",
        element=name,
    )


def invalid_reference(detail: str = "Invalid Reference Id", element: str = "") -> QBOFault:
    """Return the 2500 fault for a reference to something unusable."""
    return QBOFault("2500", "Invalid Reference Id", detail, element=element)


def stale_object(user: str) -> QBOFault:
    """Return the 5010 stale-object fault (text from batch/basic.yml)."""
    return QBOFault(
        "5010",
        "Stale Object Error",
        f"Stale Object Error : You and {user} were working on this at the same time. "
        f"{user} finished before you did, so your work was not saved.",
    )


def duplicate_name() -> QBOFault:
    """Return the 6240 fault (text from error/validation.yml)."""
    return QBOFault("6240", "Duplicate Name Exists Error", "The name supplied already exists. : null", element=None)


def invalid_query(detail: str) -> QBOFault:
    """Return the 4001 query fault (error/400.yml has no ``element``)."""
    return QBOFault("4001", "Invalid query", detail, element=None)


def unsupported_operation(detail: str) -> QBOFault:
    """Return the 500-coded "Unsupported Operation" fault (error/500.yml)."""
    return QBOFault("500", "Unsupported Operation", detail, element=None)


def system_fault() -> QBOFault:
    """Return the 10000 SystemFault QBO answers on an internal error."""
    return QBOFault(
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your data. "
        "Please wait a few minutes and try again. If the problem persists, contact customer support.",
        status=500,
        fault_type="SystemFault",
    )


def gateway_fault_body(code: str, message: str, detail: str, fault_type: str, time_ms: int) -> dict:
    """Return the gateway's lowercase fault document (error/401.yml)."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [{"message": message, "detail": detail, "code": code, "element": None}],
            "type": fault_type,
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": time_ms,
        "status": None,
        "cdcresponse": [],
    }


def throttle_xml(time_text: str) -> str:
    """Return the XML ThrottleExceeded body QBO sends even to JSON clients (quickbooks-online.md §4)."""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse time="{time_text}" xmlns="http://schema.intuit.com/finance/v3">\n'
        '    <Fault type="SERVICE">\n'
        '        <Error code="3001">\n'
        "            <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>\n"
        "            <Detail>The request limit was reached.  Try again later</Detail>\n"
        "        </Error>\n"
        "    </Fault>\n"
        "</IntuitResponse>\n"
    )
