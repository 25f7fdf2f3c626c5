"""Alert state and firings (the tables the proxy's writers keep: common/alerts/state.py)."""
from common.alerts import state


def firing_now():
    """{rule name: [{group, value, since}]} of what fires now."""
    return state.firing_groups()


def recent_firings(limit):
    """The newest `limit` firings, newest first."""
    return state.recent_firings(limit)
