"""scrapyd's JSON API beside scrapy-do's: its own Klein app (app.py), mounted under
/scrapyd/ on the main listener and at the root of a second listener (listener.py).

The rest is pure and tested directly: replies.py (scrapyd's envelope and messages),
params.py (scrapyd's parameter rules), versions.py (naming and ordering), eggs.py
(an egg turned into a project archive the project store takes like any push).
"""
