"""The pipeline's steps, one module each, named as the step: the modality-free skeleton of each (read its inputs,
call the modality, write its outputs whole, return its record). No step imports another step; driftfit.pipeline
lists them in order, and the CLI, the Prefect flow and both dvc.yaml files follow that list."""
