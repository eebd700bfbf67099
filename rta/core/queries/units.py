"""What a query counts: users (persons), sessions, or groups (`unit: "group:<type>"`).

The neutral layer turns a group unit into the backend's group view (`Backend.for_group`,
where each event's user is the key of its group) and runs the users' query over it, so
no kernel or SQL module knows about groups. Checks: the type must be known (when the
context can say: `QueryContext.group_types`), and a saved segment (a set of users) cannot
restrict a count of groups.

Thread rule: pure, or the caller's worker thread (the backend's).
"""

from __future__ import annotations

from typing import Any

from rta.core.errors import field_error
from rta.core.group_wire import parse_unit, unit_group
from rta.core.queries.backend import Backend, QueryContext

__all__ = ["parse_unit", "unit_backend", "unit_group"]


def unit_backend(ctx: QueryContext, unit: str, fieldname: str, segment: Any = None) -> Backend:
    """The backend whose users are `unit`'s entities (`ctx.backend` for users/sessions)."""
    group_type = unit_group(unit)
    if group_type is None:
        return ctx.backend
    if ctx.group_types is not None:
        known = ctx.group_types()
        if group_type not in known:
            raise field_error(fieldname, f"unknown group type '{group_type}' (known: "
                              f"{', '.join(sorted(known)) or 'none'})", value=unit,
                              allowed=[f"group:{t}" for t in sorted(known)])
    if segment is not None:
        raise field_error("segment", f"a saved segment restricts users; it cannot restrict "
                          f"a count of groups ({fieldname} {unit})")
    return ctx.backend.for_group(group_type)
