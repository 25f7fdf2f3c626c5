"""Client keys: made by `nexus keys create`, shown once, stored only as a hash.

A key looks like `cnp_live_<43 url-safe characters>` (Claude Nexus's prefix, so
secret scanners that know it keep working); its public id looks like
`ck_<12 hex>` and is what lists, logs and rows show.
"""
import hashlib
import hmac
import secrets
import sys

from .models import ClientKey, utcnow

PREFIX = "cnp_live_"
ID_PREFIX = "ck_"


def generate():
    """A new (key_id, secret) pair; the secret is never stored."""
    return ID_PREFIX + secrets.token_hex(6), PREFIX + secrets.token_urlsafe(32)


def hash_key(secret):
    """The sha256 hex digest stored in place of the key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def verify(secret, key_hash):
    """True when `secret` hashes to `key_hash`, compared in constant time."""
    return hmac.compare_digest(hash_key(secret), key_hash or "")


def looks_like_key(text):
    """True for strings with the client-key prefix (cheap pre-check, not a verification)."""
    return isinstance(text, str) and text.startswith(PREFIX)


def create(name="", domain=None, requests_per_minute=None, daily_budget_usd=None):
    """Store a new key's hash and return (row, secret)."""
    key_id, secret = generate()
    row = ClientKey.create(key_id=key_id, name=name or "", domain=(domain or None) and domain.lower(),
                           key_hash=hash_key(secret), requests_per_minute=requests_per_minute,
                           daily_budget_usd=daily_budget_usd)
    return row, secret


def find(secret):
    """The ClientKey row for `secret`, revoked or not, or None."""
    row = ClientKey.get_or_none(ClientKey.key_hash == hash_key(secret))
    if row is not None and verify(secret, row.key_hash):
        return row
    return None


def revoke(key_id):
    """Mark `key_id` revoked; return False when there is no such live key."""
    return bool(ClientKey.update(revoked_at=utcnow())
                .where((ClientKey.key_id == key_id) & ClientKey.revoked_at.is_null())
                .execute())


def _bind(config):
    from .db import connect
    from .migrations import migrate

    db = connect(config.database_url)
    migrate(db)
    db.connect(reuse_if_open=True)
    return db


def _limits(row):
    rpm = f"{row.requests_per_minute}/min" if row.requests_per_minute else "no rpm limit"
    budget = f"${row.daily_budget_usd:.2f}/day" if row.daily_budget_usd is not None else "no budget"
    return f"{rpm}, {budget}"


def cmd_create(args, config):
    """`nexus keys create`: print the new key once."""
    for flag, value in (("--rpm", args.rpm), ("--daily-budget", args.daily_budget)):
        if value is not None and value <= 0:
            print(f"nexus: {flag} must be positive", file=sys.stderr)
            return 2
    db = _bind(config)
    try:
        row, secret = create(args.name, args.domain, args.rpm, args.daily_budget)
    finally:
        db.close()
    print(f"key id:  {row.key_id}")
    print(f"domain:  {row.domain or 'any'}")
    print(f"limits:  {_limits(row)}")
    print(f"key:     {secret}")
    print("This key is shown once and cannot be recovered; store it now.", file=sys.stderr)
    return 0


def cmd_list(args, config):
    """`nexus keys list`: ids, names and limits; never a key or its hash."""
    db = _bind(config)
    try:
        rows = list(ClientKey.select().order_by(ClientKey.created_at))
    finally:
        db.close()
    if not rows:
        print("no client keys")
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        print(f"{row.key_id}  {state:<24} domain={row.domain or 'any'}  {_limits(row)}  "
              f"created {row.created_at:%Y-%m-%d %H:%M}  {row.name}")
    return 0


def cmd_revoke(args, config):
    """`nexus keys revoke KEY_ID`: the proxy refuses the key within seconds."""
    db = _bind(config)
    try:
        done = revoke(args.key_id)
    finally:
        db.close()
    if not done:
        print(f"nexus: no active key {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}")
    return 0
