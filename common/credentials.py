"""Domain credential files: `<domain>.credentials.json` in CREDENTIALS_DIR.

The format is Claude Nexus's, so that its credential directories work unchanged:

    {"type": "api_key", "accountId": "acc_1", "api_key": "sk-ant-...",
     "client_api_key": "cnp_live_...",
     "slack": {"webhook_url": "https://hooks.slack.com/...", "channel": "#x",
               "username": "Claude", "icon_emoji": ":robot_face:", "enabled": true}}

    {"type": "oauth", "accountId": "acc_2",
     "oauth": {"accessToken": "...", "refreshToken": "...", "expiresAt": 1740263270430,
               "scopes": ["user:inference"], "isMax": true}}

`expiresAt` is milliseconds since the epoch. Nothing here prints or logs a secret:
error messages name fields, never values.
"""
import datetime
import ipaddress
import json
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass, field

SUFFIX = ".credentials.json"
MAX_DOMAIN_LENGTH = 253  # the DNS limit; also keeps file names under NAME_MAX
# Host names, IPv4 and bracketed IPv6 literals; nothing that means something to a path.
_DOMAIN_RE = re.compile(r"[a-z0-9_\-.:\[\]]+")
TYPES = ("api_key", "oauth")


@dataclass(frozen=True)
class Credential:
    """One parsed credential file; secrets are kept out of repr()."""

    type: str
    account_id: str | None
    api_key: str | None = field(default=None, repr=False)
    oauth: dict | None = field(default=None, repr=False)
    client_api_key: str | None = field(default=None, repr=False)
    slack: dict | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def access_token(self):
        return (self.oauth or {}).get("accessToken")

    @property
    def refresh_token(self):
        return (self.oauth or {}).get("refreshToken")

    @property
    def expires_at(self):
        """OAuth expiry as a naive UTC datetime, None when unknown or not OAuth."""
        ms = (self.oauth or {}).get("expiresAt")
        if not isinstance(ms, (int, float)) or isinstance(ms, bool):
            return None
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).replace(tzinfo=None)

    def upstream_secret(self):
        """The secret sent upstream: the API key or the OAuth access token."""
        return self.api_key if self.type == "api_key" else self.access_token


def check_domain(domain):
    """Return `domain` lower-cased, or raise ValueError if it could escape the directory."""
    if not isinstance(domain, str) or not domain:
        raise ValueError("empty host")
    if len(domain) > MAX_DOMAIN_LENGTH:
        raise ValueError("host too long")
    lowered = domain.lower()
    if ".." in lowered or lowered.startswith(".") or not _DOMAIN_RE.fullmatch(lowered):
        # '/', '\\', NUL and control characters all fail the pattern
        raise ValueError("host has characters a domain cannot have")
    return lowered


def _split_port(host):
    """(host name, port or None) of a Host header value; IPv6 literals keep their brackets."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return name + "]", port or None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port or None
    return host, None


def keeps_port(name):
    """True for `localhost` and IP literals: Claude Nexus names their files with the port."""
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def file_domains(host):
    """The names a request's credential file may have, in the order they are tried.

    Claude Nexus keeps the port for `localhost` and IP hosts (its README has users
    create `localhost:3000.credentials.json`) and drops it for other hosts; the name
    without the port is tried second, so files named either way work.
    """
    name, port = _split_port((host or "").strip().lower())
    if port and keeps_port(name):
        return [f"{name}:{port}", name]
    return [name]


def credential_path(credentials_dir, domain):
    """The path of `domain`'s credential file inside `credentials_dir` (which need not exist)."""
    name = check_domain(domain) + SUFFIX
    base = os.path.realpath(credentials_dir)
    path = os.path.join(base, name)
    if os.path.dirname(path) != base:
        raise ValueError("host escapes the credentials directory")
    return path


def _require_str(data, key, where):
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: '{key}' must be a non-empty string")
    return value


def parse(data):
    """A Credential from the file's JSON object; ValueError names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("the file must hold a JSON object")
    kind = data.get("type")
    if kind not in TYPES:
        raise ValueError(f"'type' must be one of {', '.join(TYPES)}")
    api_key = oauth = None
    if kind == "api_key":
        api_key = _require_str(data, "api_key", "api_key credential")
    else:
        oauth = data.get("oauth")
        if not isinstance(oauth, dict):
            raise ValueError("oauth credential: 'oauth' must be an object")
        _require_str(oauth, "accessToken", "oauth")
        expires = oauth.get("expiresAt")
        if expires is not None and (not isinstance(expires, (int, float)) or isinstance(expires, bool)):
            raise ValueError("oauth: 'expiresAt' must be milliseconds since the epoch")
    client_key = data.get("client_api_key")
    if client_key is not None and not isinstance(client_key, str):
        raise ValueError("'client_api_key' must be a string")
    slack = data.get("slack")
    if slack is not None and not isinstance(slack, dict):
        raise ValueError("'slack' must be an object")
    account = data.get("accountId")
    return Credential(type=kind, account_id=account if isinstance(account, str) else None,
                      api_key=api_key, oauth=oauth, client_api_key=client_key or None,
                      slack=slack, raw=data)


def load(path):
    """Read and parse one credential file; OSError if unreadable, ValueError if invalid."""
    with open(path, "rb") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("not valid JSON") from None
    return parse(data)


def write_atomic(path, data):
    """Replace `path` with `data` as JSON, mode 0600, so readers see the old or the new file whole."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # The rename is durable only once the directory entry is on disk too.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def refreshed(raw, token_response, now_ms):
    """The file's JSON with the OAuth block updated from a token endpoint response.

    Every other field (accountId, client_api_key, slack, unknown ones) is kept.
    """
    old = raw.get("oauth") or {}
    new = dict(old)
    new["accessToken"] = token_response["access_token"]
    new["refreshToken"] = token_response.get("refresh_token") or old.get("refreshToken")
    new["expiresAt"] = int(now_ms + int(token_response.get("expires_in", 3600)) * 1000)
    if token_response.get("scope"):
        new["scopes"] = token_response["scope"].split()
    return {**raw, "oauth": new}


def _describe(path, now):
    """One report line for `nexus credentials check` and whether the file is usable."""
    domain = os.path.basename(path)[:-len(SUFFIX)]
    try:
        cred = load(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"{domain}: INVALID ({reason})", False
    parts = [f"{domain}: {cred.type}", f"account {cred.account_id or '-'}"]
    ok = True
    if cred.type == "oauth":
        expires = cred.expires_at
        if expires is None:
            parts.append("no expiry recorded")
        elif expires <= now:
            parts.append(f"EXPIRED {expires:%Y-%m-%d %H:%M} UTC"
                         + ("; will refresh on next request" if cred.refresh_token else "; no refresh token"))
            ok = bool(cred.refresh_token)
        else:
            parts.append(f"expires {expires:%Y-%m-%d %H:%M} UTC (in {_span(expires - now)})")
    parts.append("client key set" if cred.client_api_key else "no client key")
    slack = cred.slack or {}
    parts.append("slack on" if slack.get("webhook_url") and slack.get("enabled", True) is not False
                 else "slack off")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        parts.append(f"WARNING mode {mode:04o}, expected 0600")
    return ", ".join(parts), ok


def _span(delta):
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def cmd_check(args, config):
    """`nexus credentials check [domain]`: validate files and report OAuth expiry."""
    directory = config.credentials_dir
    if getattr(args, "domain", None):
        try:
            paths = [credential_path(directory, args.domain)]
        except ValueError as exc:
            print(f"nexus: {exc}", file=sys.stderr)
            return 2
        if not os.path.exists(paths[0]):
            print(f"{args.domain}: no credential file in {directory}", file=sys.stderr)
            return 1
    else:
        if not os.path.isdir(directory):
            print(f"nexus: CREDENTIALS_DIR {directory} is not a directory", file=sys.stderr)
            return 1
        paths = sorted(os.path.join(directory, n) for n in os.listdir(directory)
                       if n.endswith(SUFFIX) and not n.startswith("."))
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    failures = 0
    for path in paths:
        line, ok = _describe(path, now)
        print(line)
        failures += not ok
    if not paths:
        print(f"no credential files in {directory}")
    return 1 if failures else 0
