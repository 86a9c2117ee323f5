"""The seed papers' studies rerun with mclx: ``python -m studies run choi semisupcon``."""
