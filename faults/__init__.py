"""The fault campaign (``make faults``): the whole stack on loopback, jobs over REST, and
seeded faults (SIGKILLs, restarts, connection cuts), then checks that nothing was lost,
duplicated, corrupted or left behind. See docs/testing.md, "The fault campaign"."""
