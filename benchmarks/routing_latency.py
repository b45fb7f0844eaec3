"""Routing latency: from an agent's hang-up to the next waiting caller's INVITE at that agent's phone.

Measured for callcenter's event-driven ACD and, in the same run, on the same Asterisk and machine,
for Asterisk's own app_queue (strategy leastrecent, wrapuptime 0, retry 0, ringinuse no) - the peer
our users would otherwise use. One agent phone (SIPp) answers every call, talks briefly and hangs
up; N SIPp callers wait in the queue. The gap is read from the phone's own SIP trace: the 200 OK to
its BYE, then the next INVITE it receives.

app_queue's waiting callers re-check their turn on a one-second timer, so its gap depends on where
the hang-up falls in that second (a fixed talk time samples one phase: 90 ms or 890 ms). Each round
therefore uses a different talk time, spread over a second, and the gaps of all rounds are pooled.

    .venv/bin/python -m benchmarks.routing_latency [--rounds 6] [--callers 4]

Needs the ports `callcenter up` uses (stop it first) and the Asterisk root (scripts/install).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from callcenter.asterisk.process import AsteriskInstance
from callcenter.asterisk.provision import asterisk_version
from callcenter.config import Settings
from callcenter.runtime import run_on_shared_loop
from callcenter.sipp import SippPhone, agent_phone, caller_in_slot, caller_scenario

PEER_DID = "5999"
PEER_DIALPLAN = f"""
; benchmark peer only: the same callers, queued by Asterisk's own app_queue
[cc-inbound]
exten => {PEER_DID},1,Answer()
 same => n,Queue(bench-appqueue)
 same => n,Hangup()
"""
PEER_QUEUE = """
[bench-appqueue]
strategy = leastrecent
wrapuptime = 0
retry = 0
ringinuse = no
timeout = 15
member => PJSIP/agent1001
"""


def bench_settings(workdir: Path) -> Settings:
    """The project's own config, plus the peer queue, in copies under ``workdir``."""
    base = Settings()
    conf, dialplan = workdir / "asterisk_conf", workdir / "dialplan"
    shutil.copytree(base.asterisk_conf_dir, conf)
    shutil.copytree(base.dialplan_dir, dialplan)
    with open(dialplan / "extensions.conf", "a") as f:
        f.write(PEER_DIALPLAN)
    with open(conf / "queues.conf", "a") as f:
        f.write(PEER_QUEUE)
    return Settings(asterisk_instance="bench", data_dir=workdir / "data", web_port=18090,
                    asterisk_conf_dir=conf, dialplan_dir=dialplan, wrapup_seconds=0, ring_timeout=15)


def gaps_ms(phone: SippPhone) -> list[float]:
    """For each call the phone hung up, the time from its BYE's 200 OK to the next INVITE."""
    messages = phone.messages()
    acks = [m.at for m in messages if m.direction == "received" and m.is_response_to("BYE", 200)]
    invites = sorted(c.invited_at for c in phone.calls())
    gaps = []
    for ack in acks:
        later = [i for i in invites if i > ack]
        if later:
            gaps.append((later[0] - ack).total_seconds() * 1000)
    return gaps


async def measure(settings: Settings, label: str, did: str, keys: str, callers: int, talk_ms: int,
                  workdir: Path) -> list[float]:
    phone = agent_phone("1001", settings.agents["1001"], mode="answer_then_hangup",
                        ring_delay_ms=100, talk_ms=talk_ms, workdir=workdir / f"phone-{label}")
    await asyncio.to_thread(phone.start)
    try:
        scenario = dict(hold_ms=None, answer_wait_ms=300, max_wait_for_bye_ms=(talk_ms + 3000) * (callers + 2))
        runs = [caller_in_slot(i, caller_scenario(keys, caller_number=f"1390{i:07d}", **scenario), service=did,
                               name=f"{label}-caller{i}").run(timeout=(talk_ms / 1000 + 5) * (callers + 2))
                for i in range(callers)]
        results = await asyncio.gather(*runs)
        failed = [r for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"{label}: {len(failed)} caller(s) failed: {failed[0].describe()}")
    finally:
        await asyncio.to_thread(phone.stop)
    gaps = gaps_ms(phone)
    if len(gaps) < callers - 1:
        raise RuntimeError(f"{label}: expected {callers - 1} gaps, measured {len(gaps)}")
    return gaps


def summary(gaps: list[float]) -> str:
    ordered = sorted(gaps)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"{statistics.median(ordered):8.1f} {p95:8.1f} {ordered[0]:8.1f} {ordered[-1]:8.1f}   n={len(ordered)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds, each with its own talk time (default 6)")
    parser.add_argument("--callers", type=int, default=4, help="callers waiting at once per round (default 4)")
    args = parser.parse_args()
    if not 2 <= args.callers <= 50 or not 1 <= args.rounds <= 20:
        parser.error("--callers must be 2..50 and --rounds 1..20 (load runs stay bounded)")
    # talk times 700 ms + k * 1000/rounds: the hang-ups fall evenly over app_queue's one-second cycle
    talk_times = [700 + round(k * 1000 / args.rounds) for k in range(args.rounds)]

    workdir = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    settings = bench_settings(workdir)
    instance = AsteriskInstance(settings)
    print(f"starting Asterisk {'.'.join(map(str, asterisk_version(settings.asterisk_root)))} ...", flush=True)
    instance.start()

    async def run(stop) -> dict[str, list[float]]:
        from callcenter.engine import Engine

        results: dict[str, list[float]] = {"app_queue": [], "callcenter": []}
        for k, talk_ms in enumerate(talk_times, 1):
            print(f"round {k}/{len(talk_times)}: talk {talk_ms} ms, app_queue ...", flush=True)
            results["app_queue"] += await measure(settings, f"appqueue{k}", PEER_DID, "", args.callers, talk_ms, workdir)
        engine = Engine(settings)
        await engine.start()
        try:
            engine.control_agent("login", "1001", queues=["support"])
            for k, talk_ms in enumerate(talk_times, 1):
                print(f"round {k}/{len(talk_times)}: talk {talk_ms} ms, callcenter ...", flush=True)
                results["callcenter"] += await measure(settings, f"callcenter{k}", "5000", "2", args.callers, talk_ms, workdir)
        finally:
            await engine.stop()
        return results

    try:
        started = time.monotonic()
        results = run_on_shared_loop(run)
    finally:
        instance.stop()
    print(f"\nagent hangs up -> next caller's INVITE at the agent's phone, ms "
          f"({args.rounds} rounds x {args.callers} callers, 1 agent, no wrap-up; talk {talk_times[0]}-{talk_times[-1]} ms)")
    print(f"{'':14} {'median':>8} {'p95':>8} {'min':>8} {'max':>8}")
    for name in ("callcenter", "app_queue"):
        print(f"{name:14} {summary(results[name])}")
    ratio = statistics.median(results["app_queue"]) / statistics.median(results["callcenter"])
    print(f"\napp_queue / callcenter (median): {ratio:.1f}x   (run took {time.monotonic() - started:.0f} s)")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
