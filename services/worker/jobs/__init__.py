"""What a fork-server child runs: one module per job kind, each with a ``run_child``.

The fork server's registry (``services.worker.forkserver.server.JOBS``) imports them.
"""
