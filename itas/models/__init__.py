"""Model preparation: the serving environment and the default models, prepared once outside the repo."""
