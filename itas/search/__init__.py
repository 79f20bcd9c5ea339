"""The search: Optuna over YAML search spaces, a compute budget, the Pareto front, and resume."""
