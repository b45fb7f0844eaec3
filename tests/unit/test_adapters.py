"""Pure parts of the protocol adapters, the settings and the event log (a real SQLite file)."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.asterisk.ami import AmiValueError, check_fields
from callcenter.asterisk.fastagi import AgiHeaderError, play_command, checked_prompts, quote, read_headers
from callcenter.ivr.interpreter import Say
from callcenter.config import ConfigError, Settings
from callcenter.events.log import EventLog, read_events
from callcenter.storage import make_engine


def feed(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def headers_of(data: bytes, max_bytes: int = 1024, eof: bool = True) -> dict:
    async def run():
        return await asyncio.wait_for(read_headers(feed(data, eof), max_bytes), 2)
    return asyncio.run(run())


def test_agi_headers_are_parsed_up_to_the_blank_line():
    h = headers_of(b"agi_network_script: ivr/main\nagi_uniqueid: 17.3\nagi_callerid: 138\n\nleftover")
    assert h == {"agi_network_script": "ivr/main", "agi_uniqueid": "17.3", "agi_callerid": "138"}


@pytest.mark.parametrize("data, message", [
    (b"agi_network_script: ivr/main\nagi_chan", "client closed after"),
    (b"x" * 5000, "larger than 1024"),
    (b"agi_network_script: ivr\nnot a header\n\n", "malformed header"),
    (b"agi_channel: PJSIP/x\n\n", "no agi_network_script"),
])
def test_bad_agi_headers_are_refused(data, message):
    with pytest.raises(AgiHeaderError, match=message):
        headers_of(data)


def test_agi_arguments_are_quoted_and_checked():
    assert quote('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        quote("a\nSET VARIABLE X 1")
    assert checked_prompts(["hello", "digits/1"]) == ["hello", "digits/1"]
    for bad in ["../etc/passwd", "a b", "x;y", "Hello", ""]:
        with pytest.raises(ValueError, match="not a valid sound name"):
            checked_prompts(["hello", bad])
    for kind, text in [("digits", "12a"), ("number", "1e9"), ("alpha", "a b"), ("time", "24:00"), ("shout", "1")]:
        with pytest.raises(ValueError, match="cannot say"):
            checked_prompts([Say(kind, text)])


@pytest.mark.parametrize("prompt, command", [
    ("hello", 'STREAM FILE "hello" "#"'),
    (Say("digits", "1234#"), 'SAY DIGITS "1234#" "#"'),
    (Say("number", "42"), 'SAY NUMBER "42" "#"'),
    (Say("alpha", "AB12"), 'SAY ALPHA "AB12" "#"'),
    (Say("time", "07:30"), 'SAY DATETIME 27000 "#" IMp UTC'),
])
def test_prompts_become_one_agi_command_each(prompt, command):
    assert play_command(prompt, "#") == command


def test_ami_fields_with_framing_characters_are_refused_naming_the_field():
    assert check_fields("Setvar", {"Variable": "X", "Value": 5}) == {"Variable": "X", "Value": "5"}
    assert check_fields("Originate", {"Variable": ["A=1", "B=2"]}) == {"Variable": ["A=1", "B=2"]}
    with pytest.raises(AmiValueError, match="Originate: value of 'Variable'"):
        check_fields("Originate", {"Variable": ["A=1", "B=2\r\nAction: Logoff"]})
    with pytest.raises(AmiValueError, match="header name"):
        check_fields("Setvar", {"Bad: x\r\nAction": "1"})


def test_settings_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "cc.yaml"
    path.write_text("ring_timeout: -3\nqueues: [Sales]\nno_such_setting: 1\n")
    with pytest.raises(ConfigError) as err:
        Settings.load(path)
    text = str(err.value)
    assert str(path) in text and "3 invalid setting" in text
    assert "ring_timeout" in text and "queues" in text and "no_such_setting" in text
    with pytest.raises(ConfigError, match="heartbeat_max_age must be longer"):
        Settings.load(None, heartbeat_interval=5, heartbeat_max_age=4)
    with pytest.raises(ConfigError, match="not a sip:user@host"):
        Settings.load(None, agents={"1001": "sip:agent1001@host:5060\r\nX: y"})
    assert Settings.load(None).ring_timeout == 15.0


def test_event_log_writes_batches_in_order_to_a_real_sqlite_file(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def run():
        log = EventLog(engine, flush_interval=0.05, batch_size=7)
        log.start()
        for i in range(30):
            log.record("step", call_id="c1", data={"i": i})
        log.record("other", call_id="c2", queue="support", agent_id="1001")
        await asyncio.sleep(0.3)
        await log.close()

    asyncio.run(run())
    rows = read_events(engine, call_id="c1")
    assert [r["data"]["i"] for r in rows] == list(range(30))
    other = read_events(engine, call_id="c2")
    assert [(r["kind"], r["queue"], r["agent_id"]) for r in other] == [("other", "support", "1001")]


def test_event_log_keeps_rows_when_a_write_fails_and_retries(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def run():
        log = EventLog(engine, flush_interval=0.05)
        real_insert, failures = log._insert, []

        def flaky_insert(batch):
            if not failures:
                failures.append(len(batch))
                raise OSError("disk hiccup")
            real_insert(batch)

        log._insert = flaky_insert
        log.record("a", call_id="c")
        log.record("b", call_id="c")
        await log.flush()           # fails: rows kept
        assert read_events(engine) == []
        log.record("c", call_id="c")
        await log.flush()           # succeeds: all three, in order
        return failures

    assert asyncio.run(run()) == [2]
    assert [r["kind"] for r in read_events(engine, call_id="c")] == ["a", "b", "c"]


def test_one_bad_event_row_does_not_block_the_others(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def run():
        log = EventLog(engine)
        log.record("good", call_id="c")
        log.record("bad", call_id=["not", "a", "string"])  # the driver cannot bind it
        log.record("good2", call_id="c")
        await log.flush()
        return log.rejected

    assert asyncio.run(run()) == 1
    assert [r["kind"] for r in read_events(engine, call_id="c")] == ["good", "good2"]


def test_a_batch_retried_after_its_commit_was_lost_is_stored_once(tmp_path):
    """The database committed, then the connection failed before saying so: the writer keeps
    the batch and tries again. The unique event key makes the second try store nothing."""
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def run():
        log = EventLog(engine)
        real_insert, calls = log._insert, []

        def commit_then_fail(batch):
            real_insert(batch)
            calls.append(len(batch))
            if len(calls) == 1:
                raise OSError("connection reset after commit")

        log._insert = commit_then_fail
        for kind in ("queued", "offered", "answered"):
            log.record(kind, call_id="c1")
        await log.flush()   # stored, but reported as failed: kept for the next try
        await log.flush()   # the retry
        return calls, log.skipped

    calls, skipped = asyncio.run(run())
    assert calls == [3, 3]
    assert skipped == 3
    assert [r["kind"] for r in read_events(engine, call_id="c1")] == ["queued", "offered", "answered"]


def test_replayed_events_keep_their_keys_and_are_stored_once(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def run():
        log = EventLog(engine)
        for _ in range(3):  # the same stream, three times
            log.record("queued", call_id="c1", ts=10.0, key="stream:1-0")
            log.record("answered", call_id="c1", ts=12.0, key="stream:2-0")
            await log.flush()
        log.record("queued", call_id="c2", ts=13.0)  # a fresh event gets a fresh key
        log.record("queued", call_id="c3", ts=13.0)
        await log.flush()
        return log.rejected, log.skipped

    assert asyncio.run(run()) == (0, 4)  # duplicates are skipped quietly, not refused as errors
    rows = read_events(engine)
    assert [(r["call_id"], r["kind"]) for r in rows] == [
        ("c1", "queued"), ("c1", "answered"), ("c2", "queued"), ("c3", "queued")]
    keys = [r["event_key"] for r in rows]
    assert keys[:2] == ["stream:1-0", "stream:2-0"] and len(set(keys)) == 4 and all(keys)


def test_an_events_table_from_before_event_keys_is_upgraded_in_place(tmp_path):
    import sqlite3
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts FLOAT NOT NULL, "
                   "kind VARCHAR(40) NOT NULL, call_id VARCHAR(64), queue VARCHAR(32), "
                   "agent_id VARCHAR(16), data JSON NOT NULL)")
        db.execute("INSERT INTO events (ts, kind, call_id, data) VALUES (1.0, 'queued', 'old', '{}')")
    engine = make_engine(f"sqlite:///{path}")

    async def run():
        log = EventLog(engine)
        log.record("answered", call_id="old", key="k1")
        log.record("answered", call_id="old", key="k1")
        await log.flush()

    asyncio.run(run())
    rows = read_events(engine, call_id="old")
    assert [(r["kind"], r["event_key"]) for r in rows] == [("queued", None), ("answered", "k1")]
