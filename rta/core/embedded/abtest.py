"""The embedded engine's A/B partials: exposures, conversions and metric moments per variant.

The statistics are pure maths in `rta.core.queries.abtest`; this gathers what they need from
one snapshot (semantics in docs/statistics.md: first exposure per user, users in more than
one variant excluded, conversions counted from the exposure on).

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

import numpy as np

from rta.core.embedded.segments import (
    first_per_group,
    gather,
    member_lookup,
    order_by,
    value_labels,
)
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.events import FLOAT, INT, INT64_MIN
from rta.core.queries.behaviour_results import AbExposures, VariantMoments
from rta.core.queries.behaviour_specs import AbTestQuery


def exposures(snap: Snapshot, q: AbTestQuery, seg: np.ndarray | None) -> AbExposures:
    """Per-variant partials over `snap`, restricted to the users `seg` (codes) when given."""
    member = member_lookup(seg, snap)
    nusers = len(snap.dicts.users)
    vprop, mprop, wanted, start, end = (q.variant_property, q.metric_property, q.variants,
                                        q.start, q.end)
    # exposures
    rows = gather(snap, [q.assign_flt], start, end, member=member, props=[vprop])
    vid, labels = value_labels(rows.props[vprop], snap)
    keep = (rows.user >= 0) & (vid >= 0)
    if wanted is not None:
        allowed = np.array([i for i, lab in enumerate(labels) if lab in wanted], np.int64)
        keep &= np.isin(vid, allowed)
    u, t, v = rows.user[keep], rows.ts[keep], vid[keep]
    order = order_by(u, t)
    u, t, v = u[order], t[order], v[order]
    firsts = first_per_group(u)
    # users with more than one distinct variant are excluded
    pair = np.unique(u.astype(np.int64) * max(len(labels), 1) + v)
    nvar = np.bincount(pair // max(len(labels), 1), minlength=nusers) if len(pair) \
        else np.zeros(nusers, np.int64)
    eu, et, ev = u[firsts], t[firsts], v[firsts]
    clean = nvar[eu] == 1
    excluded = int((~clean).sum())
    eu, et, ev = eu[clean], et[clean], ev[clean]
    exp_ts = np.full(nusers + 1, np.iinfo(np.int64).max, dtype=np.int64)
    exp_ts[eu] = et

    # conversions and metric sums, counted from the exposure on
    lo = int(et.min()) if len(et) else start
    m = gather(snap, [q.metric_flt], lo, end, member=member, props=[mprop] if mprop else [])
    counted = (m.user >= 0) & (m.ts >= exp_ts[m.user])
    mu = m.user[counted]
    conv = np.zeros(nusers, dtype=bool)
    conv[mu] = True
    value = np.zeros(nusers, dtype=np.float64)
    if mprop:
        pv = m.props[mprop]
        num = np.where(pv[INT] == INT64_MIN, np.nan, pv[INT].astype(np.float64))
        num = np.where(np.isnan(num), pv[FLOAT], num)[counted]
        ok = ~np.isnan(num)
        value += np.bincount(mu[ok], weights=num[ok], minlength=nusers)[:nusers]

    present = sorted(set(ev.tolist()))
    moments = {}
    for idx in present:
        users = eu[ev == idx]
        n = len(users)
        vals = value[users]
        moments[idx] = VariantMoments(n, int(conv[users].sum()) if n else 0,
                                      float(vals.mean()) if n else 0.0,
                                      float(vals.var(ddof=1)) if n > 1 else 0.0,
                                      float(vals.sum()))
    return AbExposures(labels, present, moments, len(eu), excluded)
