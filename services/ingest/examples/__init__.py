"""Example event handlers (copy one and adapt it; load it with ``--event_handler FILE``)."""
