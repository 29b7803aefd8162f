"""Code that runs inside crawl processes. It imports nothing of the rest of the daemon:
a crawl loads it on top of a project's own code, so it must stay small and standalone."""
