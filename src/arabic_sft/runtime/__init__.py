"""What every script shares at run time: one-line errors (errors), one writer per output (locks), rows saved as
they finish (partial), provenance and atomic writes (manifest), the Hub probe (hub), stopping on SIGTERM
(preemption)."""
