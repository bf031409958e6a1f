"""The default match policy: from hashes alone, is a found picture a copy of a registered one?

A policy is a list of rules. Each rule names an algorithm, which kinds of region it compares on
the found (query) side and on the registered side, the largest Hamming distance it accepts and
the least PDQ quality both hashes must have. A found picture matches a registered image when
any rule is satisfied by any pair of their hashes; the pair with the widest margin under its
rule's limit is the evidence shown to the advocate. docs/matching.md derives every number from
benchmarks/robustness.py.

The same decision is reachable two ways, and they agree by construction:

* ``MatchPolicy.evaluate(query, registered)`` compares every pair of hashes (``ncii compare``,
  the benchmark);
* ``MatchPolicy.decide(hits)`` takes the pairs an index returned for one registered image,
  queried once per query hash with ``query_radius(algorithm, region)`` (the registry; at most
  ``index_radius(algorithm)``). ``evaluate`` itself keeps only the pairs within ``index_radius``
  and calls ``decide``; the extra pairs it keeps can satisfy no rule, so the match is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from hashes.signals import SIGNAL_TYPES, get_signal_type
from hashes.types import FULL, HashValue, ImageHashes

# ---------------------------------------------------------------- region kinds

#: The whole picture as decoded.
KIND_FULL = "full"
#: A rotated or mirrored variant of the whole found picture (``dihedral:rotate90`` ...).
KIND_DIHEDRAL = "dihedral"
#: A region the monitor found in a picture: borders trimmed, the picture in a screenshot, a
#: collage cell (``trim``, ``trim:smooth``, ``inner``, ``cell:N``).
KIND_FOUND = "found"
#: A registration region of an original: a crop window (``crop:…``, ``cut:…``, ``win:…``, ``aspect:…``) or
#: a slightly rotated window (``rot:…``).
KIND_CROP = "crop"
#: Anything else (e.g. imagehash's crop-resistant ``segment:N``): no default rule uses it.
KIND_OTHER = "other"

_FOUND_PREFIXES = ("trim", "inner", "cell")
_CROP_PREFIXES = ("crop", "cut", "win", "aspect", "rot")


def region_kind(region: str) -> str:
    """The kind of a region label (see the KIND_* constants)."""
    if region == FULL:
        return KIND_FULL
    head = region.split(":", 1)[0].lower()
    if head == "dihedral":
        return KIND_DIHEDRAL
    if head in _FOUND_PREFIXES:
        return KIND_FOUND
    if head in _CROP_PREFIXES:
        return KIND_CROP
    return KIND_OTHER


# ---------------------------------------------------------------- rules

@dataclass(frozen=True)
class Rule:
    """One way for a pair of hashes to call a match."""

    name: str
    algorithm: str
    query_kinds: frozenset[str]
    registered_kinds: frozenset[str]
    max_distance: int
    #: Least PDQ quality of the query hash and of the registered hash (None: not checked).
    min_quality: int | None = None
    #: Whether a registered hash of unknown quality (an HMA/StopNCII import) may satisfy the rule.
    allow_unknown_quality: bool = False
    #: Other algorithms that must agree too: (algorithm, max distance) between the whole found
    #: picture and the whole registered picture (e.g. dHash within 10 beside a looser PDQ limit).
    corroborate: tuple[tuple[str, int], ...] = ()

    def applies(self, query: HashValue, registered: HashValue) -> bool:
        """Whether this rule compares these two hashes at all (algorithm, kinds and qualities)."""
        if query.algorithm != self.algorithm or registered.algorithm != self.algorithm:
            return False
        if region_kind(query.region) not in self.query_kinds:
            return False
        if region_kind(registered.region) not in self.registered_kinds:
            return False
        if self.min_quality is not None:
            if query.quality is None or query.quality < self.min_quality:
                return False
            if registered.quality is None:
                if not self.allow_unknown_quality:
                    return False
            elif registered.quality < self.min_quality:
                return False
        return True


@dataclass(frozen=True)
class Evidence:
    """The pair of hashes behind a decision."""

    rule: str
    algorithm: str
    query_region: str
    registered_region: str
    distance: int
    max_distance: int
    query_quality: int | None
    registered_quality: int | None
    #: (algorithm, whole-vs-whole distance or None when not within reach, limit) of each
    #: corroborating algorithm the rule requires.
    corroboration: tuple[tuple[str, int | None, int], ...] = ()

    @property
    def corroborated(self) -> bool:
        """Every corroborating algorithm agrees (trivially true when the rule needs none)."""
        return all(d is not None and d <= lim for _, d, lim in self.corroboration)

    @property
    def margin(self) -> int:
        """Bits to spare under the rule's limit (negative: over it); corroboration counts too."""
        m = self.max_distance - self.distance
        for _, d, lim in self.corroboration:
            m = min(m, lim - d if d is not None else -(1 << 10))
        return m

    def as_dict(self) -> dict:
        return {"rule": self.rule, "algorithm": self.algorithm, "query_region": self.query_region,
                "registered_region": self.registered_region, "distance": self.distance,
                "max_distance": self.max_distance, "query_quality": self.query_quality,
                "registered_quality": self.registered_quality,
                "corroboration": [{"algorithm": a, "distance": d, "max_distance": lim} for a, d, lim in self.corroboration]}


@dataclass
class MatchDecision:
    """The policy's verdict on one found picture against one registered image."""

    matched: bool
    #: The winning pair when matched; otherwise the pair that came closest to some rule (or None).
    evidence: Evidence | None
    reason: str
    #: Per algorithm, the least distance over every pair of hashes compared (for reporting).
    distances: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"matched": self.matched, "reason": self.reason, "distances": dict(self.distances),
                "evidence": self.evidence.as_dict() if self.evidence else None}


Hit = tuple[HashValue, HashValue, int]  # (query hash, registered hash, Hamming distance)

_ALL_QUERY = frozenset({KIND_FULL, KIND_DIHEDRAL, KIND_FOUND})


@dataclass(frozen=True)
class MatchPolicy:
    """A set of rules; a pair of hashes satisfying any of them is a match."""

    rules: tuple[Rule, ...]
    name: str = "custom"

    # -- what the index needs

    def index_radius(self, algorithm: str) -> int:
        """The largest distance any rule accepts for `algorithm` (-1: the algorithm is not used).

        Query the index once per query hash with this radius (corroborating algorithms too);
        `decide` sorts out the rest.
        """
        radii = [r.max_distance for r in self.rules if r.algorithm == algorithm]
        radii += [d for r in self.rules for alg, d in r.corroborate if alg == algorithm]
        return max(radii) if radii else -1

    def query_radius(self, algorithm: str, region: str = FULL) -> int:
        """The largest distance any rule accepts for a query hash of this algorithm and region
        (-1: no rule uses it). At most ``index_radius(algorithm)``.

        Querying each hash at its own radius returns every hit that can satisfy a rule, so a
        match and its evidence are exactly what ``index_radius`` gives (only non-matching hits
        are missing), and the index can use its tables for the narrower queries: a found
        picture's mirrored and rotated variants need 40 bits, where its whole picture needs 64.
        """
        return self._kind_radius(algorithm, region_kind(region))

    def query_radii(self, algorithm: str) -> dict[str, int]:
        """``query_radius`` per kind of query hash (full, dihedral, found) that some rule takes."""
        radii = {kind: self._kind_radius(algorithm, kind) for kind in (KIND_FULL, KIND_DIHEDRAL, KIND_FOUND)}
        return {kind: r for kind, r in radii.items() if r >= 0}

    def _kind_radius(self, algorithm: str, kind: str) -> int:
        radii = [r.max_distance for r in self.rules if r.algorithm == algorithm and kind in r.query_kinds]
        if kind == KIND_FULL:  # corroboration compares the whole pictures
            radii += [d for r in self.rules for alg, d in r.corroborate if alg == algorithm]
        return max(radii) if radii else -1

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms some rule uses (corroborating ones included)."""
        names = [r.algorithm for r in self.rules] + [a for r in self.rules for a, _ in r.corroborate]
        return tuple(dict.fromkeys(names))

    # -- decisions

    def decide(self, hits: Iterable[Hit]) -> MatchDecision:
        """The verdict from the index hits of ONE registered image: (query, registered, distance) pairs.

        Hits beyond a rule's limit, of the wrong kinds or of too low quality are simply not
        evidence; the hits need not be sorted or complete beyond `index_radius`.
        """
        best: Evidence | None = None
        closest: Evidence | None = None
        distances: dict[str, int] = {}
        hits = list(hits)
        whole: dict[str, int] = {}  # per algorithm: least whole-vs-whole distance (corroboration)
        for q, reg, d in hits:
            d = int(d)
            if d < distances.get(q.algorithm, 1 << 30):
                distances[q.algorithm] = d
            if q.region == FULL and reg.region == FULL and d < whole.get(q.algorithm, 1 << 30):
                whole[q.algorithm] = d
        for q, reg, d in hits:
            d = int(d)
            for rule in self.rules:
                if not rule.applies(q, reg):
                    continue
                ev = Evidence(rule.name, rule.algorithm, q.region, reg.region, d, rule.max_distance,
                              q.quality, reg.quality,
                              tuple((alg, whole.get(alg), lim) for alg, lim in rule.corroborate))
                if d <= rule.max_distance and ev.corroborated:
                    if best is None or _better(ev, best):
                        best = ev
                elif closest is None or _better(ev, closest):
                    closest = ev
        if best is not None:
            return MatchDecision(True, best, _reason(best, True), distances)
        if closest is not None:
            return MatchDecision(False, closest, _reason(closest, False), distances)
        return MatchDecision(False, None, "no comparable hashes within any rule's reach", distances)

    def evaluate(self, query: ImageHashes | Sequence[HashValue], registered: ImageHashes | Sequence[HashValue]) -> MatchDecision:
        """Compare a found picture's hashes with one registered image's hashes, pairwise.

        The decision is `decide` over the pairs within `index_radius` (exactly what an index
        returns); `distances` reports the least distance per algorithm over all pairs.
        """
        qs = query.hashes if isinstance(query, ImageHashes) else list(query)
        rs = registered.hashes if isinstance(registered, ImageHashes) else list(registered)
        by_alg: dict[str, list[HashValue]] = {}
        for r in rs:
            by_alg.setdefault(r.algorithm, []).append(r)
        hits: list[Hit] = []
        distances: dict[str, int] = {}
        for q in qs:
            others = by_alg.get(q.algorithm)
            if not others or q.algorithm not in SIGNAL_TYPES:
                continue
            signal = get_signal_type(q.algorithm)
            radius = self.index_radius(q.algorithm)
            for r in others:
                d = signal.distance(q.value, r.value)
                if d < distances.get(q.algorithm, 1 << 30):
                    distances[q.algorithm] = d
                if d <= radius:
                    hits.append((q, r, d))
        decision = self.decide(hits)
        if not decision.matched and decision.evidence is None:
            decision = self._nearest_miss(qs, rs, decision)
        decision.distances = distances
        return decision

    def _nearest_miss(self, qs: Sequence[HashValue], rs: Sequence[HashValue], decision: MatchDecision) -> MatchDecision:
        """For a clear non-match, the pair that came nearest to a rule (for the reason shown)."""
        closest: Evidence | None = None
        whole: dict[str, int] = {}
        for q in qs:
            for r in rs:
                if q.algorithm == r.algorithm and q.region == FULL and r.region == FULL and q.algorithm in SIGNAL_TYPES:
                    d = get_signal_type(q.algorithm).distance(q.value, r.value)
                    whole[q.algorithm] = min(d, whole.get(q.algorithm, d))
        for rule in self.rules:
            signal = SIGNAL_TYPES.get(rule.algorithm)
            if signal is None:
                continue
            for q in qs:
                for r in rs:
                    if rule.applies(q, r):
                        ev = Evidence(rule.name, rule.algorithm, q.region, r.region, signal.distance(q.value, r.value),
                                      rule.max_distance, q.quality, r.quality,
                                      tuple((alg, whole.get(alg), lim) for alg, lim in rule.corroborate))
                        if closest is None or _better(ev, closest):
                            closest = ev
        if closest is None:
            return decision
        return MatchDecision(False, closest, _reason(closest, False), decision.distances)


def _better(a: Evidence, b: Evidence) -> bool:
    """Whether a is better evidence than b: a total order, so the winner never depends on hit order.

    Wider margin first; then the smaller distance; whole-picture pairs before regions; higher
    qualities; then by names.
    """
    return _rank(a) < _rank(b)


def _rank(ev: Evidence) -> tuple:
    whole = ev.query_region == FULL and ev.registered_region == FULL
    return (-ev.margin, ev.distance, not whole, -(ev.query_quality or -1), -(ev.registered_quality or -1),
            ev.query_region, ev.registered_region, ev.rule, ev.algorithm)


def _where(ev: Evidence) -> str:
    if ev.query_region == FULL:
        q = "the found picture"
    elif region_kind(ev.query_region) == KIND_DIHEDRAL:
        q = f"the found picture ({ev.query_region.split(':', 1)[1]})"
    else:
        q = f"found region {ev.query_region}"
    r = "the registered picture" if ev.registered_region == FULL else f"registered region {ev.registered_region}"
    return f"{q} vs {r}"


def _reason(ev: Evidence, matched: bool) -> str:
    if ev.algorithm in ("md5", "sha256"):
        return f"identical file ({ev.algorithm})" if matched else "files differ"
    bits = get_signal_type(ev.algorithm).bits
    also = "".join(
        f", {alg} {'-' if d is None else d}/{get_signal_type(alg).bits} (needs <= {lim})" for alg, d, lim in ev.corroboration)
    if matched:
        return (f"{ev.algorithm} {_where(ev)}: {ev.distance}/{bits} bits differ, within {ev.max_distance}"
                f"{also} ({ev.rule})")
    return (f"no rule satisfied; nearest: {ev.algorithm} {_where(ev)} at {ev.distance}/{bits} bits, "
            f"{ev.rule} needs <= {ev.max_distance}{also}")


# ---------------------------------------------------------------- the default policy

#: The ecosystem's PDQ rule (ThreatExchange, HMA, StopNCII): whole vs whole within 31 bits, both
#: qualities >= 50. Kept exactly so hashes exchanged with them behave as they expect.
PDQ_WHOLE_DISTANCE = 31
PDQ_MIN_QUALITY = 50
#: Region rules (docs/matching.md derives every number from the benchmark's distributions):
#: a found region vs the registered whole, and the found picture (or a found region) vs a
#: registered crop window; its mirrored/rotated variants, which multiply the comparisons by 7,
#: are held to a stricter limit against crop windows.
PDQ_REGION_DISTANCE = 48
PDQ_TURNED_CROP_DISTANCE = 40
PDQ_REGION_MIN_QUALITY = 50
#: Whole vs whole beyond the standard radius, only when dHash of the whole pictures agrees too
#: (captions, stickers, strong filters).
PDQ_CORROBORATED_DISTANCE = 64
DHASH_CORROBORATION = 10


def default_policy() -> MatchPolicy:
    """The policy the monitor and `ncii compare` use."""
    exact = frozenset({KIND_FULL})
    return MatchPolicy(name="default", rules=(
        Rule("identical-file", "sha256", exact, exact, 0),
        Rule("identical-file", "md5", exact, exact, 0),
        # The standard rule. On the found side it also takes the mirrored/rotated variants and
        # the regions that stand for the whole picture (borders trimmed, screenshot UI removed);
        # it alone accepts registered hashes of unknown quality (HMA/StopNCII imports).
        Rule("pdq-whole", "pdq", _ALL_QUERY, frozenset({KIND_FULL}), PDQ_WHOLE_DISTANCE, PDQ_MIN_QUALITY,
             allow_unknown_quality=True),
        # A region found in the picture (borders trimmed, the picture inside a screenshot, a
        # collage cell) against the registered whole picture.
        Rule("pdq-found-region", "pdq", frozenset({KIND_FOUND}), frozenset({KIND_FULL}), PDQ_REGION_DISTANCE,
             PDQ_REGION_MIN_QUALITY),
        # Whole vs whole a little beyond the standard radius (captions, stickers, strong filters)
        # when an independent hash of the whole pictures agrees.
        Rule("pdq-whole+dhash", "pdq", frozenset({KIND_FULL}), frozenset({KIND_FULL}), PDQ_CORROBORATED_DISTANCE,
             PDQ_MIN_QUALITY, corroborate=(("dhash", DHASH_CORROBORATION),)),
        # The found picture (or a region found in it) against a registered crop window.
        Rule("pdq-crop", "pdq", frozenset({KIND_FULL, KIND_FOUND}), frozenset({KIND_CROP}), PDQ_REGION_DISTANCE,
             PDQ_REGION_MIN_QUALITY),
        # A mirrored or rotated variant of the found picture against a registered crop window.
        Rule("pdq-crop-turned", "pdq", frozenset({KIND_DIHEDRAL}), frozenset({KIND_CROP}), PDQ_TURNED_CROP_DISTANCE,
             PDQ_REGION_MIN_QUALITY),
    ))
