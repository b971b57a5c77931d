"""The SSH / command target: declared deploy, verify and revert commands on a legacy host (docs/TARGETS.md)."""
