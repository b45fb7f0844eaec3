"""Outbound campaigns: lists of contacts the engine calls, connecting each answered call to an
agent of the campaign's queue, inside a calling window, with retry rules and a do-not-call list.

- :mod:`~callcenter.campaign.model`: the pure part: campaign files (``CampaignSpec``), the calling
  window, pacing (``lines_to_start``), retry decisions (``after_outcome``), Asterisk's answers as
  outcomes, the campaign states
- :mod:`~callcenter.campaign.store`: ``CampaignStore`` (synchronous, SQLAlchemy Core): campaigns,
  their contacts and the do-not-call list
- :mod:`~callcenter.campaign.importer`: contacts and do-not-call numbers from CSV, row by row
- :mod:`~callcenter.campaign.cli`: ``callcenter campaign ...`` and ``callcenter dnc ...``

The dialer that places the calls lives in the engine; it only uses the API of these modules.
Nothing is imported here, so the command line does not load SQLAlchemy and phonenumbers for
commands that never touch campaigns. See docs/campaigns.md.
"""
