"""Prefect tasks: one thin wrapper per pipeline step (retries, logging, artifacts) around driftfit."""
