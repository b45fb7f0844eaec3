"""Call recordings: the index of the WAV files Asterisk's MixMonitor writes (one per call, while
the agent is bridged with the caller), who may search, play and export them, and how long they
are kept.

This package owns:

- :mod:`callcenter.recording.model` (pure, no I/O): the ``recordings:`` settings (retention per
  queue, playback and export roles), the ``Recording`` record, which recordings a retention policy
  lets go, PCI-pause spans, and the times searches are given in;
- :mod:`callcenter.recording.store` (SQLAlchemy Core): the ``recordings`` table and its search;
- :mod:`callcenter.recording.service`: indexing a call's file when it ends (its length read from
  the WAV), safe paths inside the recordings folder, and the purge (file and row go together);
- :mod:`callcenter.recording.web`: ``/api/recordings`` (search, details, audited playback and
  export, purge);
- :mod:`callcenter.recording.cli`: ``callcenter recordings list|purge``.

Starting and pausing MixMonitor, and telling the service when a call ended, is the engine's part.
See docs/recordings.md.
"""
