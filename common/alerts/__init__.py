"""Threshold alerts: rules from NEXUS_ALERTS_FILE, evaluated in the proxy's writer processes.

- `rules.py` reads the TOML file into `Rule`s (pure; errors name the line).
- `values.py` computes a rule's value per group from `api_requests` (the database edge);
  `utilization.py` the rate-limit utilization per credential.
- `state.py` holds the tables: whether a rule+group is firing (claimed atomically, so
  that several writers and replicas post once) and the history of firings.
- `notify.py` builds the Slack or JSON payload (pure) and posts it.
- `watcher.py` ties them together on a timer, in a thread of the writer process.
"""
