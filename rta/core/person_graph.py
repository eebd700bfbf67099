"""Persons as sets of distinct ids: the deterministic fold of identity links.

Every distinct id starts as a person of its own, not identified. A link merges the source's
person into the target's person, following PostHog's rules (its plugin-server
`person-merge-service`):

- the target's person becomes *identified* (whatever the outcome, as PostHog marks the
  `distinct_id` person of any identify/alias call);
- ids already in one person: nothing changes;
- the source's person is identified already: `identify` and `alias` are refused (PostHog's
  `cannot_merge_already_identified`); `merge` ($merge_dangerously, the API's `force`) merges;
- otherwise every id of the source's person moves to the target's person.

A person's id is its *root*: the distinct id the person was first known by on the target
side of every merge (a login merges anonymous ids into the user id, so after login the
person id is the user id the app chose). The fold is pure and ordered: the same links in
the same order give the same persons, which is what lets the ClickHouse side receive the
resulting `distinct_id -> person_id` rows instead of re-deciding them.

Thread rule: owned by one thread (the engine's event loop); readers take `frozen` copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rta.core.identity import IDENTIFY, MERGE, Link

MERGED = "merged"
SAME = "same"
REFUSED = "refused"


@dataclass
class Outcome:
    """What one link did: `moved` ids now belong to `person`."""

    status: str
    person: str
    moved: list[str] = field(default_factory=list)


class PersonGraph:
    """distinct id -> person id for the ids that were ever linked; others are their own."""

    def __init__(self) -> None:
        self._root: dict[str, str] = {}  # only ids whose person holds more than themselves
        self._members: dict[str, list[str]] = {}  # root -> ids (only merged persons)
        self._identified: set[str] = set()  # roots of identified persons

    def person_of(self, distinct_id: str) -> str:
        return self._root.get(distinct_id, distinct_id)

    def members(self, person: str) -> list[str]:
        """The ids of `person` (its root first)."""
        return list(self._members.get(person, [person]))

    def identified(self, person: str) -> bool:
        return person in self._identified

    def merged_ids(self) -> dict[str, str]:
        """Every id whose person is not itself alone: id -> person id."""
        return dict(self._root)

    def __len__(self) -> int:
        return len(self._root)

    def check(self, link: Link) -> str:
        """The status `apply(link)` would give, changing nothing."""
        target, source = self.person_of(link.target), self.person_of(link.source)
        if target == source:
            return SAME
        if link.call != MERGE and source in self._identified:
            return REFUSED
        return MERGED

    def apply(self, link: Link) -> Outcome:
        target = self.person_of(link.target)
        status = self.check(link)
        self._identified.add(target)
        if status != MERGED:
            return Outcome(status, target)
        source = self.person_of(link.source)
        moved = self._members.pop(source, [source])
        group = self._members.setdefault(target, [target])
        group.extend(moved)
        self._root[target] = target
        for distinct_id in moved:
            self._root[distinct_id] = target
        self._identified.discard(source)
        return Outcome(MERGED, target, moved)

    # -- erasure (rta/core/erasure.py) -------------------------------------------------------

    def forget(self, ids: list[str]) -> None:
        """Remove the persons `ids` belong to, whole (ids, links, identified mark)."""
        for person in {self.person_of(x) for x in ids}:
            for distinct_id in self._members.pop(person, [person]):
                self._root.pop(distinct_id, None)
            self._identified.discard(person)

    def replay_links(self) -> list[Link]:
        """Links whose fold gives exactly this graph: each merged person's members merged
        into its root, and a link of an id to itself marking an identified person (the
        compacted links log after an erasure)."""
        out = [Link(MERGE, root, x) for root, members in self._members.items()
               for x in members if x != root]
        out += [Link(IDENTIFY, root, root) for root in self._identified
                if root not in self._members]
        return out
