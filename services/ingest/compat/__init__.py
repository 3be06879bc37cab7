"""The rest of automated ingest 0.7.0's handler-facing modules, for handlers ported as is.

A handler written for the anchor runs here with ``irods_capability_automated_ingest``
replaced by ``services.ingest.compat`` in its import lines and nothing else changed::

    from services.ingest.compat.core import Core            # = shared.ingest.core
    from services.ingest.compat.utils import Operation      # = shared.ingest.utils
    from services.ingest.compat.redis_utils import get_redis
    from services.ingest.compat import redis_key, sync_job, sync_logging

``get_redis(meta["config"])`` gives a Redis-like client whose keys live in the ingest job
store (table ``ingest_kv``, one namespace per job), reached through the ingest worker:
the owner's child that runs handler code never opens the store itself. The keys the
anchor kept its own statistics under (``failures:/JOB``, ``retries:/JOB``, ``tasks:/JOB``,
``count:/JOB``) read the job's counters. See docs/ingest.md, *Porting a handler*.
"""
