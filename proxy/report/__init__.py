"""Reports over the decision and event logs: personalised vs control by segment, variants,
combinations and learning over time, as text, JSON or one self-contained HTML file
(``slotwise report``; docs/reports.md)."""
