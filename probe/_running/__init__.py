"""Running a model with hooks: attach, the clean and noisy passes, snapshots, corpus and torchrun runs, safe model loading. Imports every part below it and probe.adapters."""
