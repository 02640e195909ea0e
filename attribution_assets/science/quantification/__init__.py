"""Single-image quantification baselines: IME and CSF."""
