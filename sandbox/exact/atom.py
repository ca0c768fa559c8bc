"""Exact's XML answers: the Atom feeds and entries of WCF Data Services (OData v2).

Exact's REST API answers JSON only to a client whose ``Accept`` header asks for
``application/json``; without it (no header, ``*/*``, ``application/xml``…) WCF Data Services
answers its default format: an Atom ``feed`` for a collection, an Atom ``entry`` for one record,
an ``m:error`` document for an error (OData v2 Atom format). The emulator builds every answer
as JSON and turns it into this form at the end of the request, so both stay alike.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

ATOM = "http://www.w3.org/2005/Atom"
DATA = "http://schemas.microsoft.com/ado/2007/08/dataservices"
META = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
XML = "http://www.w3.org/XML/1998/namespace"
SCHEME = "http://schemas.microsoft.com/ado/2007/08/dataservices/scheme"
RELATED = "http://schemas.microsoft.com/ado/2007/08/dataservices/related/"

FEED_TYPE = "application/atom+xml;type=feed;charset=utf-8"
ENTRY_TYPE = "application/atom+xml;type=entry;charset=utf-8"
XML_TYPE = "application/xml;charset=utf-8"

_WIRE_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INT32 = 2**31

#: Namespace -> prefix in the written document ("" = default namespace).
_PREFIXES = {ATOM: "", DATA: "d", META: "m", XML: "xml"}


def wants_json(accept: str | None) -> bool:
    """Say whether an ``Accept`` header asks for JSON (``application/json`` listed with q > 0)."""
    if not accept:
        return False
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() != "application/json":
            continue
        quality = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            return True
    return False


def _a(tag: str) -> str:
    return f"{{{ATOM}}}{tag}"


def _iso(ms: int) -> str:
    """Render epoch milliseconds as an Edm.DateTime (``2013-10-25T02:25:06.263``)."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}" if ms % 1000 else text


def _number(value: float) -> str:
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _property(parent: ET.Element, name: str, value: Any) -> None:
    """Append ``<d:name>`` with its Edm type, as WCF Data Services writes it."""
    element = ET.SubElement(parent, f"{{{DATA}}}{name}")
    if value is None:
        element.set(f"{{{META}}}null", "true")
        return
    if isinstance(value, bool):
        element.set(f"{{{META}}}type", "Edm.Boolean")
        element.text = "true" if value else "false"
    elif isinstance(value, int):
        wide = name == "Timestamp" or not -_INT32 <= value < _INT32
        element.set(f"{{{META}}}type", "Edm.Int64" if wide else "Edm.Int32")
        element.text = str(value)
    elif isinstance(value, float):
        element.set(f"{{{META}}}type", "Edm.Double")
        element.text = _number(value)
    elif isinstance(value, str) and (date := _WIRE_DATE.match(value)):
        element.set(f"{{{META}}}type", "Edm.DateTime")
        element.text = _iso(int(date.group(1)))
    elif isinstance(value, str) and _GUID.match(value):
        element.set(f"{{{META}}}type", "Edm.Guid")
        element.text = value
    else:
        text = str(value)
        if text != text.strip():
            # Padded codes ("     1", "2  ") keep their spaces.
            element.set(f"{{{XML}}}space", "preserve")
        element.text = text


def _relative(uri: str, base: str) -> str:
    return uri[len(base) :] if uri.startswith(base) else uri


def _entry(record: Mapping[str, Any], base: str, updated: str) -> ET.Element:
    entry = ET.Element(_a("entry"))
    meta = record.get("__metadata") or {}
    uri = str(meta.get("uri") or "")
    if uri:
        ET.SubElement(entry, _a("id")).text = uri
    type_name = str(meta.get("type") or "")
    ET.SubElement(entry, _a("category"), term=type_name, scheme=SCHEME)
    short_type = type_name.rsplit(".", 1)[-1]
    if uri:
        ET.SubElement(entry, _a("link"), rel="edit", title=short_type, href=_relative(uri, base))
    plain: list[tuple[str, Any]] = []
    for name, value in record.items():
        if name == "__metadata":
            continue
        if isinstance(value, Mapping) and ("__deferred" in value or "results" in value):
            href = _relative(f"{uri}/{name}", base)
            link = ET.SubElement(
                entry,
                _a("link"),
                rel=RELATED + name,
                type="application/atom+xml;type=feed",
                title=name,
                href=href,
            )
            if "results" in value:
                inline = ET.SubElement(link, f"{{{META}}}inline")
                inline.append(_feed(value, base, name, href, updated, nested=True))
            continue
        plain.append((name, value))
    ET.SubElement(entry, _a("title"))
    ET.SubElement(entry, _a("updated")).text = updated
    author = ET.SubElement(entry, _a("author"))
    ET.SubElement(author, _a("name"))
    content = ET.SubElement(entry, _a("content"), type="application/xml")
    properties = ET.SubElement(content, f"{{{META}}}properties")
    for name, value in plain:
        _property(properties, name, value)
    return entry


def _feed(
    envelope: Mapping[str, Any], base: str, title: str, href: str, updated: str, *, nested: bool = False
) -> ET.Element:
    feed = ET.Element(_a("feed"))
    ET.SubElement(feed, _a("title"), type="text").text = title
    ET.SubElement(feed, _a("id")).text = href if href.startswith("http") else base + href
    ET.SubElement(feed, _a("updated")).text = updated
    ET.SubElement(feed, _a("link"), rel="self", title=title, href=href)
    if "__count" in envelope and not nested:
        ET.SubElement(feed, f"{{{META}}}count").text = str(envelope["__count"])
    for record in envelope.get("results") or []:
        feed.append(_entry(record, base, updated))
    if envelope.get("__next") and not nested:
        ET.SubElement(feed, _a("link"), rel="next", href=str(envelope["__next"]))
    return feed


def _name(qualified: str) -> str:
    if not qualified.startswith("{"):
        return qualified
    uri, local = qualified[1:].split("}", 1)
    prefix = _PREFIXES[uri]
    return f"{prefix}:{local}" if prefix else local


def _write(element: ET.Element, out: list[str], declare: str = "") -> None:
    tag = _name(element.tag)
    attrs = "".join(f" {_name(k)}={quoteattr(v)}" for k, v in element.attrib.items())
    if not len(element) and element.text is None:
        out.append(f"<{tag}{declare}{attrs} />")
        return
    out.append(f"<{tag}{declare}{attrs}>{escape(element.text or '')}")
    for child in element:
        _write(child, out)
    out.append(f"</{tag}>")


def _document(root: ET.Element) -> bytes:
    """Serialise with WCF's prefixes: Atom as the default namespace, ``d:`` data, ``m:`` metadata."""
    used = {k[1:].split("}", 1)[0] for el in root.iter() for k in (el.tag, *el.attrib) if k.startswith("{")}
    declare = "".join(
        f" xmlns{':' + _PREFIXES[uri] if _PREFIXES[uri] else ''}={quoteattr(uri)}"
        for uri in (ATOM, DATA, META)
        if uri in used
    )
    out = ['<?xml version="1.0" encoding="utf-8" standalone="yes"?>']
    _write(root, out, declare)
    return "".join(out).encode("utf-8")


def to_xml(body: Any, *, base: str, title: str, href: str, now: float) -> tuple[bytes, str]:
    """Turn an Exact JSON body into the XML Exact sends without ``Accept: application/json``.

    ``base`` is the service root the hrefs are relative to (``…/api/v1/3010001/``), ``title``
    the entity set's name and ``href`` its path below ``base``. Returns the document and its
    content type.
    """
    updated = datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(body, Mapping) and "error" in body:
        return error_xml(body), XML_TYPE
    data = body.get("d") if isinstance(body, Mapping) else None
    if isinstance(data, Mapping) and isinstance(data.get("results"), list):
        root = _feed(data, base, title, href, updated)
        root.set(f"{{{XML}}}base", base)
        return _document(root), FEED_TYPE
    if isinstance(data, Mapping) and "__metadata" in data:
        root = _entry(data, base, updated)
        root.set(f"{{{XML}}}base", base)
        return _document(root), ENTRY_TYPE
    if isinstance(data, Mapping) and len(data) == 1:
        # A service operation's single value (users/UserHasRights).
        ((name, value),) = data.items()
        holder = ET.Element("holder")
        _property(holder, name, value)
        element = holder[0]
        element.tag = f"{{{DATA}}}{name}"
        return _document(element), XML_TYPE
    holder = ET.Element(f"{{{META}}}properties")
    for name, value in (data or {}).items() if isinstance(data, Mapping) else ():
        _property(holder, name, value)
    return _document(holder), XML_TYPE


def error_xml(body: Mapping[str, Any]) -> bytes:
    """Render ``{"error": {"code", "message": {"lang", "value"}}}`` as OData's XML error."""
    error = body.get("error") or {}
    message = error.get("message") or {}
    root = ET.Element(f"{{{META}}}error")
    ET.SubElement(root, f"{{{META}}}code").text = str(error.get("code") or "")
    text = ET.SubElement(root, f"{{{META}}}message")
    text.set(f"{{{XML}}}lang", str(message.get("lang") or ""))
    text.text = str(message.get("value") or "")
    return _document(root)
