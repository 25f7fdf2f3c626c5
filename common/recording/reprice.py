"""`nexus reprice`: recompute costs from the stored usage with the current price table.

Unpriced rows (a null `cost_usd`: no price was known for their model) get a cost once
NEXUS_PRICING_FILE names one; a row whose model lost its price becomes unpriced again.
"""
import sys

from ..models import ApiRequest
from . import aggregates
from .rows import parse_json
from .store import _transaction


def _differs(new, old):
    if new is None or old is None:
        return (new is None) != (old is None)
    return abs(new - old) > 1e-12


def reprice(database, prices, since=None, batch_size=1000):
    """Recompute cost_usd from usage_data; rebuild the aggregates; return rows changed."""
    changed, last_id = 0, 0
    while True:
        query = (ApiRequest.select(ApiRequest.id, ApiRequest.model, ApiRequest.usage_data,
                                   ApiRequest.cost_usd)
                 .where(ApiRequest.id > last_id).order_by(ApiRequest.id).limit(batch_size))
        if since:
            query = query.where(ApiRequest.timestamp >= since)
        rows = list(query)
        if not rows:
            break
        updates = []
        for row in rows:
            usage = parse_json(row.usage_data)
            cost = prices.cost(row.model, usage) if usage and row.model else 0.0
            if _differs(cost, row.cost_usd):
                row.cost_usd = cost
                updates.append(row)
        with _transaction(database):
            if updates:
                ApiRequest.bulk_update(updates, fields=[ApiRequest.cost_usd], batch_size=100)
        changed += len(updates)
        last_id = rows[-1].id
    aggregates.rebuild(database, since=since)
    return changed


def cmd_reprice(args, config):
    """`nexus reprice`: recompute costs with the current price table."""
    from ..db import connect
    from ..export import parse_when
    from ..pricing import load_prices
    try:
        since = parse_when(args.since) if args.since else None
    except ValueError as error:
        print(f"nexus reprice: {error}", file=sys.stderr)
        return 2
    database = connect(config.database_url)
    try:
        changed = reprice(database, load_prices(config.pricing_file), since=since)
    finally:
        database.close()
    print(f"repriced rows: {changed}")
    return 0
