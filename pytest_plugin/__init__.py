"""pytest plugin for lambdasim (``pytest --lambda-sim``); filled in by a later release."""
