"""Layer: stages. Evaluate, claims, figures and the report: every model on every test domain, the paper's
claims with verdicts, the figures, ``report.md``, and the pictures of what was joined into groups."""
