"""The REST gateway: v1 endpoints of the Go stager, task store, dispatcher, events."""
