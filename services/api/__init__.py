"""The REST gateway: v1 endpoints of the Go stager, task store, dispatcher, events.

``app.create_app`` wires it; ``routes`` and ``handlers`` serve the endpoints, ``views``
holds their bodies, ``middleware`` turns errors into problems, ``store/`` keeps the
tasks, ``dispatcher`` releases them and ``bus`` speaks AMQP (docs/api.md has the map).
"""
