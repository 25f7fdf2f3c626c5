"""Scramble every conversation link of a database, relink it, and compare.

    python -m bench.seed --database-url sqlite:///data/relink.db --rows 200000 --body-fraction 1
    python -m bench.relink_check --database-url sqlite:///data/relink.db --batch-size 1000

`nexus relink` must give the grouping fresh traffic gets whatever the table held
before (docs/conversations.md). This overwrites every link column with other rows'
values, runs relink, and reports the rows whose links differ from the ones before.
Sub-agent and compaction links are re-derived from stored bodies only, so seed with
`--body-fraction 1` for an exact comparison.
"""
import argparse
import random
import sys
import time

from common import config as nexus_config
from common import db as nexus_db
from common.models import ApiRequest
from common.recording.relink import relink
from common.recording.store import LINK_COLUMNS

_CHUNK = 500


def links(database):
    """{request_id: (link columns…)} of every row."""
    fields = [ApiRequest.request_id] + [getattr(ApiRequest, c) for c in LINK_COLUMNS]
    return {r[0]: r[1:] for r in ApiRequest.select(*fields).tuples()}


def scramble(database, seed=1):
    """Give every row another row's conversation, a branch named after a request id, a
    random parent and task parent, and a random sub-task flag."""
    rows = list(ApiRequest.select(ApiRequest.id, ApiRequest.request_id).order_by(ApiRequest.id).tuples())
    ids = [request_id for _, request_id in rows]
    rng = random.Random(seed)
    for start in range(0, len(rows), _CHUNK):
        changed = [ApiRequest(id=pk, conversation_id=rng.choice(ids),
                              branch_id=f"branch_{rng.choice(ids)[:8]}",
                              parent_request_id=rng.choice(ids), is_subtask=rng.random() < 0.5,
                              parent_task_request_id=rng.choice(ids))
                   for pk, _ in rows[start:start + _CHUNK]]
        with database.atomic():
            ApiRequest.bulk_update(changed, fields=list(LINK_COLUMNS), batch_size=_CHUNK)
    return len(rows)


def main(argv=None):
    """Entry point: snapshot, scramble, relink, compare; exit 1 on any difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    config = nexus_config.load()
    database = nexus_db.connect(args.database_url)
    with database.connection_context():
        before = links(database)
        started = time.monotonic()
        count = scramble(database, args.seed)
        print(f"scrambled {count} rows in {time.monotonic() - started:.0f} s", file=sys.stderr)
        started = time.monotonic()
        changed, linked, total = relink(database, config, batch_size=args.batch_size)
        print(f"relinked in {time.monotonic() - started:.0f} s: {changed} rows changed, "
              f"{linked} of {total} inference requests linked to a parent", file=sys.stderr)
        after = links(database)
    wrong = [rid for rid, value in before.items() if after.get(rid) != value]
    print(f"{len(wrong)} of {len(before)} rows differ from the links before scrambling")
    for rid in wrong[:10]:
        print(f"  {rid}: {before[rid]} -> {after.get(rid)}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
