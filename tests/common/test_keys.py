"""Client keys: shown once, stored hashed, compared in constant time, revocable."""
import hmac

from common import cli, keys
from common.models import ClientKey


def test_generated_keys_are_recognisable_and_unique():
    pairs = {keys.generate() for _ in range(50)}
    assert len({k for k, _ in pairs}) == len({s for _, s in pairs}) == 50
    for key_id, secret in pairs:
        assert key_id.startswith("ck_") and secret.startswith("cnp_live_") and len(secret) > 40


def test_verify_uses_a_constant_time_compare(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    _, secret = keys.generate()
    assert keys.verify(secret, keys.hash_key(secret))
    assert not keys.verify(secret + "x", keys.hash_key(secret))
    assert not keys.verify(secret, None)
    assert len(calls) == 3


def test_only_the_hash_is_stored(database):
    row, secret = keys.create(name="ci", domain="A.Example", requests_per_minute=5)
    stored = ClientKey.get_by_id(row.key_id)
    assert stored.key_hash == keys.hash_key(secret) and stored.domain == "a.example"
    dump = [str(v) for r in ClientKey.select().dicts() for v in r.values()]
    assert not any(secret in v for v in dump)
    assert keys.find(secret).key_id == row.key_id
    assert keys.find(secret + "x") is None


def test_revoke_marks_the_key_once(database):
    row, secret = keys.create()
    assert keys.revoke(row.key_id)
    assert not keys.revoke(row.key_id)
    assert keys.find(secret).revoked_at is not None


def _run(argv, db_url, capsys):
    code = cli.main(argv, environ={"DATABASE_URL": db_url})
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_prints_the_key_once_and_never_again(db_url, capsys):
    code, out, err = _run(["keys", "create", "--name", "laptop", "--rpm", "10",
                           "--daily-budget", "2.5"], db_url, capsys)
    assert code == 0 and "shown once" in err
    secret = next(line.split()[-1] for line in out.splitlines() if line.startswith("key:"))
    key_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("key id:"))
    assert secret.startswith("cnp_live_")

    code, out, err = _run(["keys", "list"], db_url, capsys)
    assert code == 0 and key_id in out and "laptop" in out and "10/min" in out and "$2.50/day" in out
    assert secret not in out + err and keys.hash_key(secret) not in out + err

    assert _run(["keys", "revoke", key_id], db_url, capsys)[0] == 0
    code, out, err = _run(["keys", "list"], db_url, capsys)
    assert "revoked" in out and secret not in out + err
    assert _run(["keys", "revoke", key_id], db_url, capsys)[0] == 1


def test_cli_refuses_nonsense_limits(db_url, capsys):
    code, out, err = _run(["keys", "create", "--rpm", "0"], db_url, capsys)
    assert code == 2 and "--rpm" in err and "cnp_live_" not in out
