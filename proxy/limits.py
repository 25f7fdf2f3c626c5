"""Per-client-key limits, shared by every worker and replica through the database.

Requests per minute: a fixed UTC-minute window in `usage_windows`, raised by one
conditional upsert (`... ON CONFLICT DO UPDATE ... WHERE requests < limit`), so
that concurrent workers can never let more than the limit through and refused
requests are not counted. Daily budget: the key's spend today, summed from
`api_requests.cost_usd`, cached for a few seconds (records land asynchronously,
so the budget can be overrun by the requests in flight; see docs/security.md).
A key with a budget that made an unpriced request today (a null `cost_usd`: its model
has no price) is refused until a price is added and `nexus reprice` fills the cost: its
spend cannot be shown to fit the budget (docs/pricing.md).
"""
import datetime
import logging
import threading
import time

import peewee as pw
from playhouse.pool import MaxConnectionsExceeded

from common.models import ApiRequest, UsageWindow, utcnow

from .refusals import rate_limited

log = logging.getLogger("nexus.proxy.limits")

# What a database that is down, or too busy to lend a connection, raises.
DATABASE_ERRORS = (pw.PeeweeException, MaxConnectionsExceeded)

BUDGET_TTL_S = 5.0
PRUNE_EVERY_S = 600.0
KEEP_WINDOWS = datetime.timedelta(days=1)


class connected:
    """Use the models' database, opening (and later closing) a connection only if needed."""

    def __init__(self, db):
        self.db = db
        self.opened = False

    def __enter__(self):
        if self.db.is_closed():
            self.db.connect()
            self.opened = True
        return self.db

    def __exit__(self, *exc):
        if self.opened:
            self.db.close()


class Limiter:
    """Checks and counts one request against a key's limits; raises a 429 Refusal."""

    def __init__(self, clock=utcnow):
        self._clock = clock
        self._spend = {}  # key_id -> (monotonic time fetched, USD spent today)
        self._lock = threading.Lock()
        self._last_prune = time.monotonic()

    def check(self, key_id, requests_per_minute=None, daily_budget_usd=None):
        """Raise a 429 Refusal if the key is over budget or over its rate; else count it."""
        if not requests_per_minute and daily_budget_usd is None:
            return
        now = self._clock()
        db = UsageWindow._meta.database
        with connected(db):
            if daily_budget_usd is not None:
                spent, unpriced = self._spent_today(key_id, now)
                midnight = datetime.datetime.combine(now.date(), datetime.time()) + datetime.timedelta(days=1)
                if unpriced:
                    raise rate_limited(
                        f"client key {key_id} has a daily budget and {unpriced} request(s) today "
                        "to a model without a known price; add its price (NEXUS_PRICING_FILE) "
                        "and run `nexus reprice`", (midnight - now).total_seconds())
                if spent >= daily_budget_usd:
                    raise rate_limited(
                        f"client key {key_id} has used its daily budget of ${daily_budget_usd:.2f}",
                        (midnight - now).total_seconds())
            if requests_per_minute:
                self._count(key_id, requests_per_minute, now)
            self._maybe_prune(now)

    def _spent_today(self, key_id, now):
        cached = self._spend.get(key_id)
        if cached and time.monotonic() - cached[0] < BUDGET_TTL_S:
            return cached[1]
        midnight = datetime.datetime.combine(now.date(), datetime.time())
        unpriced = pw.fn.SUM(pw.Case(None, [(ApiRequest.cost_usd.is_null(), 1)], 0))
        spent, unpriced = (ApiRequest.select(pw.fn.COALESCE(pw.fn.SUM(ApiRequest.cost_usd), 0),
                                             pw.fn.COALESCE(unpriced, 0))
                           .where((ApiRequest.client_key_id == key_id)
                                  & (ApiRequest.timestamp >= midnight))
                           .tuples().get())
        result = (float(spent or 0.0), int(unpriced or 0))
        self._spend[key_id] = (time.monotonic(), result)
        return result

    def _count(self, key_id, limit, now):
        start = now.replace(second=0, microsecond=0)
        counted = (UsageWindow
                   .insert(key_id=key_id, window="minute", window_start=start, requests=1, cost_usd=0)
                   .on_conflict(conflict_target=[UsageWindow.key_id, UsageWindow.window,
                                                 UsageWindow.window_start],
                                update={UsageWindow.requests: UsageWindow.requests + 1},
                                where=(UsageWindow.requests < limit))
                   .as_rowcount().execute())
        if not counted:
            reset = start + datetime.timedelta(minutes=1)
            raise rate_limited(f"client key {key_id} is limited to {limit} requests per minute",
                                (reset - now).total_seconds())

    def _maybe_prune(self, now):
        """Drop old windows now and then, so the table stays one row per active key-minute."""
        if time.monotonic() - self._last_prune < PRUNE_EVERY_S or not self._lock.acquire(False):
            return
        try:
            self._last_prune = time.monotonic()
            UsageWindow.delete().where(UsageWindow.window_start < now - KEEP_WINDOWS).execute()
        except DATABASE_ERRORS as exc:
            log.warning("could not prune usage windows (%s)", type(exc).__name__)
        finally:
            self._lock.release()
