"""Pure matching of SaaS customers to ledger customers: normalisers and an indexed matcher.

Nothing here touches the database or the network, so the suggestion job, the benchmark and
the tests run the very same code. Exact keys (VAT, company number, e-mail, e-mail domain) are
looked up in dictionaries; fuzzy name scoring (rapidfuzz) runs only on candidates that share a
blocking key with the customer (a 4-letter prefix of a name word), never on every pair.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Indel
from stdnum import get_cc_module
from stdnum.ch import uid as ch_uid
from stdnum.exceptions import ValidationError

# -- normalisers ----------------------------------------------------------------------------------

#: VAT prefixes that are not the ISO country code (Greece writes EL; Northern Ireland XI).
_VAT_PREFIX_TO_CC = {"EL": "gr", "XI": "gb"}
_CC_TO_VAT_PREFIX = {"GR": "EL"}
#: What people put between the digits of a VAT number.
_VAT_NOISE = re.compile(r"[\s.\-/_,:]+")
#: Swiss VAT numbers end in the tax's name in one of three languages.
_CH_SUFFIX = re.compile(r"(MWST|TVA|IVA)$")


def normalise_vat(value: str | None, country: str | None = None) -> str | None:
    """Return the canonical form of a valid VAT number (``NL123456782B01``), else None.

    Spaces, dots, dashes and case are ignored; a number without its country prefix is read
    as one of ``country``. Invalid numbers (bad checksum, junk) give None: they never match.
    """
    if not value or not isinstance(value, str):
        return None
    compact = _VAT_NOISE.sub("", value).upper()
    if len(compact) < 4 or len(compact) > 20:
        return None
    if compact.startswith("CHE"):
        return _swiss(compact)
    candidates: list[tuple[str, str]] = []
    prefix = compact[:2]
    if prefix.isalpha():
        candidates.append((prefix, compact))
    if country and len(country) == 2 and country.isalpha():
        own = _CC_TO_VAT_PREFIX.get(country.upper(), country.upper())
        if own == "CH":
            return _swiss("CHE" + compact)
        candidates.append((own, own + compact))
    for vat_prefix, number in candidates:
        cc = _VAT_PREFIX_TO_CC.get(vat_prefix, vat_prefix.lower())
        module = _vat_module(cc)
        if module is None:
            continue
        try:
            return vat_prefix + module.compact(module.validate(number))
        except (ValidationError, ValueError, TypeError, IndexError):
            continue
    return None


def _vat_module(cc: str) -> Any:
    if not cc.isalpha() or len(cc) != 2:
        return None
    try:
        return get_cc_module(cc, "vat")
    except (ImportError, ValueError):
        return None


def _swiss(compact: str) -> str | None:
    number = _CH_SUFFIX.sub("", compact)
    try:
        return ch_uid.compact(ch_uid.validate(number))
    except (ValidationError, ValueError, TypeError):
        return None


_COC_NOISE = re.compile(r"[^0-9A-Z]+")


def normalise_coc(value: str | None) -> str | None:
    """Return a company registration number without blanks and punctuation (``HRB 1234`` → ``HRB1234``).

    Numbers shorter than 5 characters say too little to match on and give None.
    """
    if not value or not isinstance(value, str):
        return None
    compact = _COC_NOISE.sub("", unicodedata.normalize("NFKD", value).upper())
    return compact if len(compact) >= 5 else None


_EMAIL_SPLIT = re.compile(r"[,;\s]+")
_EMAIL = re.compile(r"^[^@\s]+@([a-z0-9-]+\.)+[a-z0-9-]{2,}$")

#: Mailbox providers anyone can sign up to: sharing one says nothing about being one company.
FREE_MAIL_DOMAINS = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.de",
        "hotmail.nl",
        "live.com",
        "live.nl",
        "live.be",
        "live.fr",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
        "yahoo.es",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "gmx.ch",
        "gmx.at",
        "gmx.com",
        "web.de",
        "t-online.de",
        "freenet.de",
        "mail.com",
        "mail.ru",
        "yandex.com",
        "yandex.ru",
        "protonmail.com",
        "proton.me",
        "pm.me",
        "zoho.com",
        "fastmail.com",
        "hey.com",
        "tutanota.com",
        "bluewin.ch",
        "sunrise.ch",
        "hispeed.ch",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "wanadoo.fr",
        "sfr.fr",
        "telenet.be",
        "skynet.be",
        "ziggo.nl",
        "kpnmail.nl",
        "planet.nl",
        "home.nl",
        "xs4all.nl",
        "hetnet.nl",
        "upcmail.nl",
        "btinternet.com",
        "sky.com",
        "virginmedia.com",
        "talktalk.net",
        "libero.it",
        "virgilio.it",
        "terra.es",
        "telefonica.net",
        "qq.com",
        "163.com",
    ]
)


def normalise_emails(value: str | None) -> tuple[str, ...]:
    """Return the valid addresses in a field (some hold two, comma-separated), trimmed and lower case."""
    if not value or not isinstance(value, str):
        return ()
    found = []
    for part in _EMAIL_SPLIT.split(value.strip().lower()):
        part = part.strip("<>\"'()")
        if _EMAIL.match(part) and part not in found:
            found.append(part)
    return tuple(found)


def email_domain(address: str | None) -> str | None:
    """Return the company domain of an address, or None for free-mail providers and junk."""
    emails = normalise_emails(address)
    if not emails:
        return None
    domain = emails[0].rsplit("@", 1)[1]
    return None if domain in FREE_MAIL_DOMAINS else domain


#: Words naming a legal form, in the countries we serve; they say nothing about identity.
LEGAL_FORMS = frozenset(
    [
        "bv",
        "nv",
        "vof",
        "cv",
        "bvba",
        "cvba",
        "sprl",
        "srl",
        "sa",
        "sas",
        "sasu",
        "sarl",
        "eurl",
        "sci",
        "snc",
        "scs",
        "ag",
        "gmbh",
        "mbh",
        "kg",
        "ohg",
        "ug",
        "gbr",
        "ev",
        "se",
        "kgaa",
        "ltd",
        "limited",
        "llc",
        "llp",
        "lp",
        "plc",
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "cie",
        "pty",
        "sl",
        "slu",
        "sll",
        "spa",
        "sagl",
        "sarl",
        "oy",
        "ab",
        "as",
        "aps",
        "asa",
    ]
)
#: Words joining partners' names ("Müller & Söhne", "Müller und Söhne"): "&" is punctuation already.
CONJUNCTIONS = frozenset({"and", "und", "en", "et", "y", "e"})
_DOTTED_INITIALS = re.compile(r"\b(?:[a-z]\.){2,}")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def strip_accents(text: str) -> str:
    """Return ``text`` without diacritics (``Société Générale`` → ``Societe Generale``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalise_name(name: str | None) -> str:
    """Return a company name reduced to its identifying words, in order.

    Case, accents, punctuation, "and" words and legal forms (B.V., GmbH, Ltd, S.A., & Co. KG…) are dropped;
    a name made only of legal-form words keeps them rather than becoming empty.
    """
    if not name or not isinstance(name, str):
        return ""
    text = strip_accents(name.casefold()).replace("ß", "ss")
    text = text.replace("'", "").replace("\u2019", "")
    # "B.V." and "S.A." are one word each: join dotted initials before splitting on punctuation.
    text = _DOTTED_INITIALS.sub(lambda m: m.group(0).replace(".", "") + " ", text)
    words = [w for w in _NOT_WORD.split(text) if w]
    kept = [w for w in words if w not in LEGAL_FORMS and w not in CONJUNCTIONS]
    return " ".join(kept or words)


def name_similarity(a: str, b: str) -> float:
    """Return 0 to 100: how alike two normalised names are, word order ignored."""
    if not a or not b:
        return 0.0
    return Indel.normalized_similarity(" ".join(sorted(a.split())), " ".join(sorted(b.split()))) * 100


# -- the matcher ----------------------------------------------------------------------------------

#: Score of each kind of evidence when it agrees (names scale with their similarity).
EVIDENCE_SCORES = {"vat": 100, "coc": 96, "email": 90, "email_domain": 70}
#: A name counts as evidence from this similarity on; its score is similarity * NAME_WEIGHT.
NAME_THRESHOLD = 85.0
NAME_WEIGHT = 0.9
#: Suggestions below this score are not kept.
MIN_SCORE = 60
#: Two candidates within this many points of each other (the second at least AMBIGUOUS_FLOOR)
#: make the customer ambiguous: a human must choose.
AMBIGUITY_MARGIN = 8
AMBIGUOUS_FLOOR = 70
#: Blocking keys (and e-mail domains) shared by more ledger customers than this are too common
#: to say anything; skipping them keeps fuzzy scoring on a handful of candidates.
MAX_BLOCK = 400
#: A company domain shared by more ledger customers than this is a group's mailbox domain: it
#: supports other evidence but is not a reason on its own.
MAX_DOMAIN = 5
#: How many candidates an ambiguous customer keeps for the human to choose from.
KEEP_AMBIGUOUS = 3


@dataclass(frozen=True, slots=True)
class Party:
    """A customer on either side, as the matcher sees it."""

    id: Any
    name: str
    vat: str | None = None
    coc: str | None = None
    email: str | None = None
    country: str | None = None
    active: bool = True


@dataclass(slots=True)
class Candidate:
    """One ledger customer suggested for a SaaS customer, with the evidence side by side."""

    external_id: Any
    score: int
    method: str
    evidence: list[dict[str, Any]]
    archived: bool = False


@dataclass(slots=True)
class Suggestion:
    """The best candidate(s) for one SaaS customer; ``ambiguous`` when no single one stands out."""

    customer_id: Any
    candidates: list[Candidate]
    ambiguous: bool = False

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


@dataclass(slots=True)
class _Prepared:
    party: Party
    name: str
    vat: str | None
    coc: str | None
    emails: tuple[str, ...]
    domain: str | None
    keys: tuple[str, ...] = field(default_factory=tuple)
    #: The name's words sorted, so similarity ignores word order without re-splitting per pair.
    sorted_name: str = ""


def _prepare(party: Party) -> _Prepared:
    name = normalise_name(party.name)
    emails = normalise_emails(party.email)
    return _Prepared(
        party=party,
        name=name,
        vat=normalise_vat(party.vat, party.country),
        coc=normalise_coc(party.coc),
        emails=emails,
        domain=email_domain(emails[0]) if emails else None,
        keys=blocking_keys(name),
        sorted_name=" ".join(sorted(name.split())),
    )


#: German umlauts written out (Müller = Mueller): folded before keys are taken, so both meet.
_UMLAUT_SPELLING = re.compile(r"(?<=[a-z])([aou])e")


def blocking_keys(normalised_name: str) -> tuple[str, ...]:
    """Return the name's blocking keys: each word's first four letters (typos later in a word still meet)."""
    words = (_UMLAUT_SPELLING.sub(r"\1", word) for word in normalised_name.split())
    return tuple(dict.fromkeys(word[:4] for word in words if len(word) >= 2))


class LedgerIndex:
    """Ledger customers indexed by every exact key and by name blocking key."""

    def __init__(self, ledger: Iterable[Party]) -> None:
        self.parties: dict[Any, _Prepared] = {}
        self.by_vat: dict[str, list[Any]] = defaultdict(list)
        self.by_coc: dict[str, list[Any]] = defaultdict(list)
        self.by_email: dict[str, list[Any]] = defaultdict(list)
        self.by_domain: dict[str, list[Any]] = defaultdict(list)
        self.by_key: dict[str, set[Any]] = defaultdict(set)
        for party in ledger:
            prepared = _prepare(party)
            self.parties[party.id] = prepared
            if prepared.vat:
                self.by_vat[prepared.vat].append(party.id)
            if prepared.coc:
                self.by_coc[prepared.coc].append(party.id)
            for email in prepared.emails:
                self.by_email[email].append(party.id)
            if prepared.domain:
                self.by_domain[prepared.domain].append(party.id)
            for key in prepared.keys:
                self.by_key[key].add(party.id)

    def __len__(self) -> int:
        return len(self.parties)

    def candidates(self, item: _Prepared) -> set[Any]:
        """Return the ids sharing an exact key with ``item``, or a name similar enough to score.

        Name blocking: a candidate must share all but one of the name's (not too common)
        blocking keys, since a name similar enough to count shares most of its words; rapidfuzz
        then screens those in C, and only the survivors are scored in full.
        """
        found = self.exact_candidates(item)
        blocks = [block for key in item.keys if 0 < len(block := self.by_key.get(key, set())) <= MAX_BLOCK]
        if not blocks or not item.sorted_name:
            return found
        if len(blocks) <= 2:
            near = set().union(*blocks)
        else:
            near = set().union(*(set.intersection(*combo) for combo in combinations(blocks, len(blocks) - 1)))
        near -= found
        if near:
            ids = list(near)
            names = [self.parties[i].sorted_name for i in ids]
            hits = process.extract(
                item.sorted_name, names, scorer=fuzz.ratio, processor=None, score_cutoff=NAME_THRESHOLD, limit=None
            )
            found.update(ids[position] for _name, _score, position in hits)
        return found

    def exact_candidates(self, item: _Prepared) -> set[Any]:
        """Return the ids sharing a VAT number, company number, e-mail or company domain with ``item``."""
        found: set[Any] = set()
        if item.vat:
            found.update(self.by_vat.get(item.vat, ()))
        if item.coc:
            found.update(self.by_coc.get(item.coc, ()))
        for email in item.emails:
            same = self.by_email.get(email, ())
            if len(same) <= MAX_DOMAIN:
                found.update(same)
        if item.domain:
            same = self.by_domain.get(item.domain, ())
            if len(same) <= MAX_DOMAIN:
                found.update(same)
        return found


def score_pair(saas: _Prepared, ledger: _Prepared, domain_size: int = 1, email_size: int = 1) -> Candidate | None:
    """Score one pair; return a candidate when the score reaches MIN_SCORE.

    ``domain_size`` and ``email_size`` are how many ledger customers share the ledger side's
    e-mail domain and address: a mailbox many customers share supports, it does not decide.
    """
    s, l = saas.party, ledger.party  # noqa: E741 - s(aas) and l(edger), side by side
    evidence: list[dict[str, Any]] = []
    if saas.vat and ledger.vat:
        if saas.vat == ledger.vat:
            evidence.append({"kind": "vat", "score": 100, "saas": s.vat, "ledger": l.vat, "key": saas.vat})
        else:
            evidence.append({"kind": "vat_differs", "score": -40, "saas": s.vat, "ledger": l.vat})
    if saas.coc and ledger.coc:
        if saas.coc == ledger.coc:
            evidence.append({"kind": "coc", "score": 96, "saas": s.coc, "ledger": l.coc})
        else:
            evidence.append({"kind": "coc_differs", "score": -20, "saas": s.coc, "ledger": l.coc})
    shared = set(saas.emails) & set(ledger.emails)
    if shared:
        score = 90 if email_size <= 2 else 50
        evidence.append({"kind": "email", "score": score, "saas": s.email, "ledger": l.email})
    elif saas.domain and saas.domain == ledger.domain:
        score = 70 if domain_size <= MAX_DOMAIN else 40  # a group's shared domain only supports
        evidence.append(
            {"kind": "email_domain", "score": score, "saas": s.email, "ledger": l.email, "key": saas.domain}
        )
    similarity = (
        Indel.normalized_similarity(saas.sorted_name, ledger.sorted_name, score_cutoff=NAME_THRESHOLD / 100) * 100
        if saas.sorted_name and ledger.sorted_name
        else 0.0
    )
    if similarity >= NAME_THRESHOLD:
        evidence.append(
            {
                "kind": "name",
                "score": round(similarity * NAME_WEIGHT),
                "saas": s.name,
                "ledger": l.name,
                "similarity": round(similarity, 1),
            }
        )
    agreeing = [e for e in evidence if e["score"] > 0]
    if not agreeing:
        return None
    best = max(agreeing, key=lambda e: e["score"])
    score = best["score"] + min(9, 3 * (len(agreeing) - 1))
    score += sum(e["score"] for e in evidence if e["score"] < 0)
    if not l.active:
        evidence.append({"kind": "archived", "score": -5, "saas": "", "ledger": "archived in the ledger"})
        score -= 5
    score = max(0, min(100, score))
    if score < MIN_SCORE:
        return None
    return Candidate(l.id, score, best["kind"], evidence, archived=not l.active)


def suggest(
    customers: Sequence[Party],
    index: LedgerIndex,
    *,
    taken: Iterable[Any] = (),
    progress: Callable[[int], None] | None = None,
    every: int = 500,
) -> list[Suggestion]:
    """Return one suggestion per customer with a candidate; ``taken`` ledger ids are not offered.

    ``progress(done)`` is called every ``every`` customers and at the end.
    """
    unavailable = set(taken)
    found: list[Suggestion] = []
    for done, customer in enumerate(customers, start=1):
        item = _prepare(customer)
        scored = []
        for external_id in index.candidates(item):
            if external_id in unavailable:
                continue
            ledger = index.parties[external_id]
            domain_size = len(index.by_domain.get(ledger.domain, ())) if ledger.domain else 0
            email_size = max((len(index.by_email.get(e, ())) for e in ledger.emails), default=0)
            candidate = score_pair(item, ledger, domain_size, email_size)
            if candidate is not None:
                scored.append(candidate)
        if scored:
            scored.sort(key=lambda c: (-c.score, c.archived, str(c.external_id)))
            ambiguous = (
                len(scored) > 1
                and scored[1].score >= AMBIGUOUS_FLOOR
                and scored[0].score - scored[1].score < AMBIGUITY_MARGIN
            )
            kept = [c for c in scored[:KEEP_AMBIGUOUS] if c.score >= AMBIGUOUS_FLOOR] if ambiguous else scored[:1]
            found.append(Suggestion(customer.id, kept, ambiguous))
        if progress and done % every == 0:
            progress(done)
    if progress:
        progress(len(customers))
    return found


def match(customers: Sequence[Party], ledger: Iterable[Party], **options: Any) -> list[Suggestion]:
    """Index ``ledger`` and suggest candidates for ``customers`` (see :func:`suggest`)."""
    return suggest(customers, LedgerIndex(ledger), **options)
