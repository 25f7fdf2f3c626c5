"""Evaluate the alert rules on a timer and post what crossed: a thread of the writer process.

Each proxy worker's writer process runs one (off the request path, ADR 0125). Every
NEXUS_ALERTS_INTERVAL seconds it computes each rule's values, claims the crossings in the
database (only one process wins each) and posts the ones it won; groups that fell back
below their threshold are re-armed.
"""
import atexit
import logging
import threading

import requests

from ..logs import event
from ..models import utcnow
from . import notify, state
from .rules import RulesError
from .values import current, load_rules

log = logging.getLogger("nexus.alerts")


class Evaluator:
    """One pass over the rules: values, claims, re-arms, posts."""

    def __init__(self, rules, database, session=None):
        self.rules = rules
        self.database = database
        self.session = session or requests.Session()

    def run_once(self, now=None):
        """Evaluate every rule at `now`; the firings this call posted."""
        now = now or utcnow()
        posted = []
        for rule in self.rules:
            try:
                claimed = self._evaluate(rule, now)
            except Exception as exc:  # one rule's failure (or the database's) skips a turn
                event(log, "alert not evaluated", logging.WARNING, alert=rule.name,
                      reason=f"{type(exc).__name__}: {str(exc).strip()[:300]}")
                continue
            for group, value, firing in claimed:
                self._post(rule, group, value, firing)
                posted.append(firing)
        return posted

    def _evaluate(self, rule, now):
        with self.database.connection_context():
            above = {g: v for g, v in current(rule, now).items() if v > rule.above}
            claimed = []
            for group, value in sorted(above.items()):
                firing = state.claim(self.database, rule, group, value, now)
                if firing is not None:
                    claimed.append((group or None, value, firing))
            state.rearm(rule, above, now)
        return claimed

    def _post(self, rule, group, value, firing):
        error = notify.post(self.session, rule, notify.payload(rule, group, value, firing.fired_at))
        event(log, "alert fired", logging.WARNING if error is None else logging.ERROR,
              alert=rule.name, metric=rule.metric, group=group, value=value,
              threshold=rule.above, delivered=error is None, reason=error)
        try:
            with self.database.connection_context():
                state.delivered(firing, error)
        except Exception as exc:
            event(log, "alert delivery not recorded", logging.WARNING, alert=rule.name,
                  reason=type(exc).__name__)


class AlertWatcher:
    """Runs an Evaluator every `interval` seconds in a daemon thread until stopped."""

    def __init__(self, evaluator, interval):
        self.evaluator = evaluator
        self.interval = max(0.05, interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nexus-alerts", daemon=True)

    def start(self):
        self._thread.start()
        atexit.register(self.stop)  # a post under way finishes before the process ends
        return self

    def _run(self):
        # The first pass waits one interval: the writer applies migrations first.
        while not self._stop.wait(self.interval):
            if self._my_turn():
                self.evaluator.run_once()

    def _my_turn(self):
        # Slightly less than the interval: a process whose timer fires just before the
        # schedule's time still gets its turn (clocks of replicas differ a little too).
        database = self.evaluator.database
        try:
            with database.connection_context():
                return state.take_turn(utcnow(), self.interval * 0.9)
        except Exception as exc:  # tables not there yet, database away: next interval
            event(log, "alerts not evaluated", logging.WARNING,
                  reason=f"{type(exc).__name__}: {str(exc).strip()[:300]}")
            return False

    def stop(self, timeout=15.0):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def watch(config, database):
    """Start evaluating NEXUS_ALERTS_FILE's rules; the watcher, or None when there are none."""
    try:
        rules = load_rules(config.alerts_file)
    except RulesError as exc:  # start-up checked the file; it changed since
        event(log, "alerts off: the rules file is not valid", logging.ERROR, reason=str(exc))
        return None
    if not rules:
        return None
    event(log, "alerts on", alerts=len(rules), interval_s=config.alerts_interval)
    return AlertWatcher(Evaluator(rules, database), config.alerts_interval).start()
