"""The HAProxy target: on-prem services behind an HAProxy backend, driven through its Runtime API."""
