"""`nexus retention`: delete rows older than NEXUS_RETENTION_DAYS, keeping the aggregates.

Rows go in batches, each in its own short transaction, so that the proxy's
writer and the dashboard are never blocked for long. A row's bodies and task
invocations go with it; `api_usage_hourly` is left as it is, so the charts
still cover the pruned days.
"""
import datetime

from .models import ApiRequest, RequestBody, TaskInvocation, utcnow


def cutoff_for(days, now=None):
    """The moment before which rows are pruned."""
    return (now or utcnow()) - datetime.timedelta(days=days)


def prune(database, cutoff, batch_size=5000):
    """Delete rows older than `cutoff` (a naive UTC datetime); return how many went."""
    deleted = 0
    while True:
        batch = list(ApiRequest.select(ApiRequest.id, ApiRequest.request_id)
                     .where(ApiRequest.timestamp < cutoff)
                     .order_by(ApiRequest.timestamp, ApiRequest.id).limit(batch_size).tuples())
        if not batch:
            return deleted
        ids = [i for i, _ in batch]
        request_ids = [r for _, r in batch]
        with database.atomic():
            RequestBody.delete().where(RequestBody.request_id.in_(request_ids)).execute()
            TaskInvocation.delete().where(TaskInvocation.request_id.in_(request_ids)).execute()
            deleted += ApiRequest.delete().where(ApiRequest.id.in_(ids)).execute()


def cmd_retention(args, config):
    """Prune rows older than --days (default NEXUS_RETENTION_DAYS); 0 keeps everything."""
    from .db import connect
    days = args.days if args.days is not None else config.retention_days
    if days <= 0:
        print("retention is off (NEXUS_RETENTION_DAYS=0): nothing deleted")
        return 0
    database = connect(config.database_url)
    cutoff = cutoff_for(days)
    try:
        deleted = prune(database, cutoff, batch_size=args.batch_size)
    finally:
        database.close()
    print(f"deleted {deleted} requests older than {cutoff.isoformat(timespec='seconds')} UTC "
          f"({days} days); hourly aggregates kept")
    return 0
