"""Playbooks (YAML decision trees, tree.py) and triage (a check walked through them to a diagnosis)."""
