"""HTTP over plain ASGI, for every front end that listens (the KServe server, the edge runtime).

``routes`` answers the V1 and V2 REST routes, health, metadata and the repository API from one
table, through the core's ``DataPlane``, passing anything else to the app behind (KServe's
FastAPI app, or the edge runtime's fallback); ``protocol`` is the connection handling (uvicorn's
httptools protocol with coalesced writes, head size and time limits, ``Connection: close`` while
draining); ``drain`` is SIGTERM's drain-then-stop; ``settings`` the fields every HTTP listener has.

May import: the core, orjson, uvicorn (``protocol``). Not KServe, FastAPI or grpc: the edge
runtime serves these routes without them.
"""
