"""The admin view's API (the role Asynqmon played for the Go stager), under ``/v1/admin``.

* ``access``: the admin and read-only roles, the audit log;
* ``handlers`` / ``views``: the routes and their pydantic bodies;
* ``queues``: queue depths and the dead-letter queue (broker side);
* ``workers``: the latest heartbeat of every worker;
* ``routes``: the documented route table (part of ``services.api.routes.ROUTES``) and
  :func:`admin_ctx`, the heartbeat consumer's cleanup context.

Kept light: ``services.api.settings`` imports ``services.api.admin.settings``.
"""
