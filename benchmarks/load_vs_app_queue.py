"""The same SIPp load through two dialplans on the same Asterisk, in the same run: Asterisk's own
app_queue (the peer our users would otherwise use) and this engine. Every caller presses a key in
an IVR, queues, is answered by one of ten SIPp agent phones and talks for 2 s.

Printed for each side:
- the highest calls-per-second step at which under 0.1% of calls failed (steps of ``--step-seconds``
  of arrivals at 2, 4, 6 ... ``--max-cps`` calls/s; a step with any failed call ends the ramp, so
  with fewer than 1000 calls per step "under 0.1%" means none);
- p50 / p99 of the handoff "an agent becomes free (its BYE answered) -> the next INVITE reaches
  that agent's phone", with callers waiting (read from the phones' own SIP traces, in the steps
  whose arrivals outrun the ten agents);
- and the ratio between the two sides. For the engine also: CPU per call (the engine runs in this
  process) and memory per waiting call (RSS growth with ``--parked`` callers queued and no agent).

    .venv/bin/python -m benchmarks.load_vs_app_queue [--max-cps 12] [--step-seconds 8] [--parked 100]

Bounded: at most max-cps x step-seconds calls per step; a caller not done within 90 s counts as
failed, and every SIPp run has a time limit. Needs the
ports `callcenter up` uses (stop it first) and the Asterisk root (scripts/install).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from benchmarks.routing_latency import bench_settings
from callcenter.asterisk.process import AsteriskInstance
from callcenter.asterisk.provision import asterisk_version
from callcenter.config import Settings
from callcenter.runtime import run_on_shared_loop
from callcenter.sipp import SippCaller, SippPhone, agent_phone, caller_scenario

AGENTS = [str(n) for n in range(1001, 1011)]
TALK_MS = 2000
MAX_CALL_SECONDS = 90
PEER_DID = "5998"
# the peer's IVR: a prompt, one key (2), then app_queue; the engine's is ivr_flows/main (key 2: support)
PEER_DIALPLAN = f"""
; benchmark peer only: the same callers, the same key press, queued by Asterisk's own app_queue
[cc-inbound]
exten => {PEER_DID},1,Answer()
 same => n,Read(CHOICE,beep,1,,1,8)
 same => n,GotoIf($["${{CHOICE}}" = "2"]?queue)
 same => n,Hangup()
 same => n(queue),Queue(bench-load,,,,600)
 same => n,Hangup()
"""
PEER_QUEUE = "\n[bench-load]\nstrategy = leastrecent\nwrapuptime = 0\nretry = 1\nringinuse = no\ntimeout = 15\n" + \
    "".join(f"member => PJSIP/agent{a}\n" for a in AGENTS)


@dataclass
class Side:
    name: str
    steps: list[tuple[int, int, int]] = field(default_factory=list)  # (cps, ok, failed)
    gaps: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    saturated: list[tuple[datetime, datetime]] = field(default_factory=list)  # steps with callers waiting

    @property
    def max_clean_cps(self) -> int:
        clean = [cps for cps, ok, failed in self.steps if failed <= 0.001 * (ok + failed) and ok]
        return max(clean, default=0)

    @property
    def calls(self) -> int:
        return sum(ok for _, ok, _ in self.steps)


def handoffs_ms(phone: SippPhone, windows: list[tuple[datetime, datetime]]) -> list[float]:
    """The phone's "free -> next INVITE" gaps (200 OK to its BYE, then the next INVITE it gets),
    counted only when both fall inside one saturated step: callers were waiting, so the gap is
    routing, not idle time between arrivals."""
    messages = phone.messages()
    freed = [m.at for m in messages if m.direction == "received" and m.is_response_to("BYE", 200)]
    invites = sorted(c.invited_at for c in phone.calls())
    gaps = []
    for at in freed:
        later = [i for i in invites if i > at]
        if later and any(start <= at and later[0] <= end for start, end in windows):
            gaps.append((later[0] - at).total_seconds() * 1000)
    return gaps


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def load_settings(workdir: Path) -> Settings:
    base = bench_settings(workdir)
    with open(base.dialplan_dir / "extensions.conf", "a") as f:
        f.write(PEER_DIALPLAN)
    with open(base.asterisk_conf_dir / "queues.conf", "a") as f:
        f.write(PEER_QUEUE)
    return base


def final_counts(stat_file: Path) -> tuple[int, int]:
    """(successful, failed) calls from sipp's -trace_stat CSV (its last row is the final count)."""
    with open(stat_file, newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    last = rows[-1]
    return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])


async def step(did: str, keys: str, cps: int, seconds: int, workdir: Path, label: str) -> tuple[int, int]:
    calls = cps * seconds
    stat = workdir / f"{label}_stat.csv"
    # A caller still unanswered (no agent's BYE) after MAX_CALL_SECONDS counts as failed: a
    # contact center that keeps a caller longer than that at this load is not coping.
    scenario = caller_scenario(keys, caller_number="13955500000", hold_ms=None, answer_wait_ms=300,
                               play_audio=False, max_wait_for_bye_ms=MAX_CALL_SECONDS * 1000)
    caller = SippCaller(scenario, local_port=6900, media_port=9900, service=did, name=label, workdir=workdir,
                        keep_files=True, extra_args=["-m", str(calls), "-r", str(cps), "-rp", "1000",
                                                     "-l", str(calls), "-trace_stat", "-stf", str(stat),
                                                     "-fd", "1"])
    await caller.run(timeout=seconds + MAX_CALL_SECONDS + 30)
    return final_counts(stat)


async def run_side(side: Side, did: str, keys: str, args, workdir: Path) -> None:
    phones: list[SippPhone] = [agent_phone(a, f"sip:agent{a}@127.0.0.1:{5100 + int(a) - 1000}",
                                           mode="answer_then_hangup", ring_delay_ms=100, talk_ms=TALK_MS,
                                           play_audio=False, workdir=workdir / f"phone-{side.name}-{a}")
                               for a in AGENTS]
    for phone in phones:
        await asyncio.to_thread(phone.start)
    try:
        cpu_before = time.process_time()
        for cps in range(2, args.max_cps + 1, 2):
            print(f"  {side.name}: {cps} calls/s for {args.step_seconds} s ...", flush=True)
            began = datetime.now()
            ok, failed = await step(did, keys, cps, args.step_seconds, workdir, f"{side.name}-{cps}cps")
            side.steps.append((cps, ok, failed))
            if cps * (TALK_MS + 400) / 1000 > len(AGENTS):  # arrivals outrun the agents: callers wait
                side.saturated.append((began, datetime.now()))
            print(f"    {ok} answered, {failed} failed", flush=True)
            if failed > 0.001 * (ok + failed):
                break
        side.cpu_seconds = time.process_time() - cpu_before
    finally:
        for phone in phones:
            await asyncio.to_thread(phone.stop)
    for phone in phones:
        side.gaps += handoffs_ms(phone, side.saturated)


async def parked_memory(engine, count: int, workdir: Path) -> float:
    """KiB of this process's RSS per caller waiting in the engine (no agent logged in)."""
    before = rss_kib()
    scenario = caller_scenario("2", caller_number="13955500001", hold_ms=20_000, answer_wait_ms=300,
                               play_audio=False)
    caller = SippCaller(scenario, local_port=6901, media_port=9910, service="5000", name="parked", workdir=workdir,
                        keep_files=True, extra_args=["-m", str(count), "-r", "25", "-l", str(count)])
    run = asyncio.create_task(caller.run(timeout=120))
    deadline = time.monotonic() + 60
    waiting = 0
    while time.monotonic() < deadline and waiting < count:
        await asyncio.sleep(0.5)
        waiting = sum(len(q["waiting"]) for q in engine.router.queues_snapshot(time.time()))
    after = rss_kib()
    await run
    return (after - before) / max(1, waiting)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-cps", type=int, default=12, help="last step's calls per second (2..30)")
    parser.add_argument("--step-seconds", type=int, default=8, help="seconds of arrivals per step (3..30)")
    parser.add_argument("--parked", type=int, default=100, help="callers parked for the memory figure (10..300)")
    args = parser.parse_args()
    if not (2 <= args.max_cps <= 30 and 3 <= args.step_seconds <= 30 and 10 <= args.parked <= 300):
        parser.error("--max-cps 2..30, --step-seconds 3..30, --parked 10..300 (load runs stay bounded)")
    workdir = Path(tempfile.mkdtemp(prefix="cc-load-"))
    settings = load_settings(workdir)
    instance = AsteriskInstance(settings)
    print(f"starting Asterisk {'.'.join(map(str, asterisk_version(settings.asterisk_root)))} ...", flush=True)
    instance.start()
    peer, ours = Side("app_queue"), Side("callcenter")
    per_waiting_kib = 0.0

    async def run(stop) -> int:
        nonlocal per_waiting_kib
        from callcenter.engine import Engine

        await run_side(peer, PEER_DID, "2", args, workdir)
        engine = Engine(settings)
        await engine.start()
        try:
            per_waiting_kib = await parked_memory(engine, args.parked, workdir)
            for agent_id in AGENTS:
                engine.control_agent("login", agent_id, queues=["support"])
            await run_side(ours, "5000", "2", args, workdir)
        finally:
            await engine.stop()
        return 0

    started = time.monotonic()
    try:
        run_on_shared_loop(run)
    finally:
        instance.stop()
    print(f"\n{len(AGENTS)} agents, {TALK_MS} ms talk, IVR key 2, steps of {args.step_seconds} s "
          f"(run took {time.monotonic() - started:.0f} s)")
    print(f"{'':12} {'max CPS <0.1% failed':>21} {'calls':>6} {'handoff p50 ms':>15} {'p99 ms':>8} {'n':>5}")
    for side in (ours, peer):
        print(f"{side.name:12} {side.max_clean_cps:>21} {side.calls:>6} {statistics.median(side.gaps):>15.1f} "
              f"{percentile(side.gaps, 0.99):>8.1f} {len(side.gaps):>5}")
    print(f"\nCPS ratio callcenter/app_queue: {ours.max_clean_cps / max(1, peer.max_clean_cps):.2f}  "
          f"(target >= 1.0)")
    print(f"handoff p99 ratio app_queue/callcenter: {percentile(peer.gaps, 0.99) / percentile(ours.gaps, 0.99):.1f}x  "
          f"(target: callcenter p99 < 50 ms and below app_queue's)")
    print(f"engine CPU per call: {1000 * ours.cpu_seconds / max(1, ours.calls):.1f} ms "
          f"(this process, which runs the engine; SIPp and Asterisk excluded)")
    print(f"engine memory per waiting call: {per_waiting_kib:.1f} KiB RSS ({args.parked} callers parked)")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
