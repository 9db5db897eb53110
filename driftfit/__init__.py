"""driftfit: keep a text classifier up to date (validate, shift, strategy, train, evaluate, promote)."""

import os

# Safe defaults, set before any Hugging Face import: no hub traffic or telemetry unless the user
# sets these variables themselves (e.g. HF_HUB_OFFLINE=0 to load a hub model they have access to).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
