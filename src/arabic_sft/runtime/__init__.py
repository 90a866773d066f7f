"""The ground floor, standard library only at import time (everything imports it): one-line errors (errors), one
writer per output (locks), rows saved as they finish (partial), provenance and atomic writes (manifest), the Hub probe
(hub), free ports (ports), and stopping on SIGTERM or Ctrl-C with the work saved (stopping)."""
