"""A pre-imported fork server: children that run as a user, started in milliseconds.

The worker (root) starts one fork server (``python -m services.worker.forkserver``, root)
that imports python-irodsclient, the isync core and the job functions once. On request
it forks a child that

1. starts its own session (process group = its pid, so ``killpg`` stops all of it),
2. closes every inherited descriptor but its output pipe (never the server's socket),
3. does setgid, initgroups, setuid to the user (root and system uids refused),
   becomes non-dumpable and dies with the fork server,
4. runs the job function and writes JSON lines to the pipe: ``progress``/``report``/…
   lines while it works, then one ``result`` or ``error`` line.

A *reusable* child (``spawn(..., reusable=True)``) also gets a task pipe as its stdin:
it runs one task per JSON line it reads there (``{"params": …}``), one at a time, with
the secret it was spawned with, and exits at end of file or after a failed task. The
worker keeps such a child only for tasks of the same user and credential (``pool``).

Wire between worker and fork server: a ``SOCK_SEQPACKET`` socketpair, one JSON object per
packet. A spawn request carries the job parameters and the secret (the decrypted
repository password travels only here and in the child's memory: never argv,
environment or logs) and, as ``SCM_RIGHTS``, the write end of the child's pipe.
The fork server answers ``spawned``/``refused`` and later ``exit`` with the exit code.

Modules: ``protocol`` (both wires), ``client`` (the worker's ``ForkServer`` and ``Child``),
``server`` (the fork server's loop and job registry), ``child`` (a forked child's life),
``pool`` (reusable children); dropping root is :mod:`shared.runas` (the ingest
worker uses it too).
"""
