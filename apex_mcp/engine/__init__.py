"""The embedded Apex engine."""
