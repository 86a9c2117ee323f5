"""`mclx probe`: how good is an embedding? Linear and MLP probes on labelled tasks."""

from mclx.probe.run import ProbeSettings, run_probe

__all__ = ["ProbeSettings", "run_probe"]
