"""One RTP recording for a whole sequence of key presses, built from Debian's per-key recordings.

sip-tester ships one RFC 2833 recording per key, each with its own fixed RTP sequence numbers and
timestamps, increasing from key 0 to key '#'. SIPp replays a recording's packets as they are, so
after '2' a '1' (lower numbers) or a second '2' (the same numbers) looks to Asterisk like an old or
repeated packet of the event it already has, and the key is lost. Here the recordings of the keys
are laid end to end, ``gap_ms`` apart, with sequence numbers and timestamps rewritten to keep
increasing, so every key of any sequence arrives as a new event. The event payloads (key, volume,
duration, end flag) are the recorded ones, untouched.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path

_PCAP_HEADER = struct.Struct("<IHHiIII")  # magic, version, zone, sigfigs, snaplen, linktype
_RECORD_HEADER = struct.Struct("<IIII")  # seconds, microseconds, captured length, original length
_LITTLE_ENDIAN_MICROSECONDS = 0xA1B2C3D4
_ETHERNET = 1
_ETHERNET_HEADER = 14
_UDP_HEADER = 8
# RTP timestamps of telephone-event packets run at 8 kHz.
_SAMPLES_PER_MS = 8


class PcapError(ValueError):
    """A recording is not the little-endian Ethernet/IPv4/UDP/RTP capture this module expects."""


def read_pcap(path: Path) -> tuple[bytes, list[tuple[float, bytes]]]:
    data = path.read_bytes()
    if len(data) < _PCAP_HEADER.size:
        raise PcapError(f"{path}: too short for a pcap file")
    magic, *_rest, linktype = _PCAP_HEADER.unpack_from(data)
    if magic != _LITTLE_ENDIAN_MICROSECONDS or linktype != _ETHERNET:
        raise PcapError(f"{path}: expected a little-endian Ethernet pcap (magic {magic:#x}, link {linktype})")
    records, offset = [], _PCAP_HEADER.size
    while offset + _RECORD_HEADER.size <= len(data):
        seconds, micros, length, _original = _RECORD_HEADER.unpack_from(data, offset)
        offset += _RECORD_HEADER.size
        records.append((seconds + micros / 1e6, data[offset:offset + length]))
        offset += length
    return data[:_PCAP_HEADER.size], records


def rtp_offset(frame: bytes) -> int:
    ip = frame[_ETHERNET_HEADER:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        raise PcapError("expected an IPv4 UDP packet")
    offset = _ETHERNET_HEADER + (ip[0] & 0x0F) * 4 + _UDP_HEADER
    if len(frame) < offset + 12 or frame[offset] >> 6 != 2:
        raise PcapError("expected an RTP version 2 packet")
    return offset


def build_sequence(recordings: list[Path], gap_ms: int) -> bytes:
    """The recordings as one capture: the n-th starts ``n * gap_ms`` after the first, with RTP
    sequence numbers and timestamps that keep increasing from one to the next."""
    header, out = b"", bytearray()
    start_time = sequence = timestamp = None
    for index, recording in enumerate(recordings):
        header, records = read_pcap(recording)
        if not records:
            raise PcapError(f"{recording}: no packets")
        first_time = records[0][0]
        first_ts = struct.unpack_from(">I", records[0][1], rtp_offset(records[0][1]) + 4)[0]
        if start_time is None:
            start_time, sequence = first_time, struct.unpack_from(">H", records[0][1], rtp_offset(records[0][1]) + 2)[0]
            timestamp = first_ts
        key_ts = (timestamp + index * gap_ms * _SAMPLES_PER_MS) & 0xFFFFFFFF
        for when, frame in records:
            rtp = rtp_offset(frame)
            packet = bytearray(frame)
            old_ts = struct.unpack_from(">I", frame, rtp + 4)[0]
            struct.pack_into(">H", packet, rtp + 2, sequence & 0xFFFF)
            struct.pack_into(">I", packet, rtp + 4, (key_ts + old_ts - first_ts) & 0xFFFFFFFF)
            struct.pack_into(">H", packet, rtp - 2, 0)  # UDP checksum: optional over IPv4, now stale
            sequence += 1
            moment = start_time + index * gap_ms / 1000 + (when - first_time)
            seconds = int(moment)
            out += _RECORD_HEADER.pack(seconds, round((moment - seconds) * 1e6) % 1_000_000, len(packet), len(packet))
            out += packet
    return header + bytes(out)


def key_sequence_pcap(recordings: list[Path], gap_ms: int, cache_dir: Path | None = None) -> Path:
    """``build_sequence`` written to a file (kept and reused: the same keys give the same file)."""
    directory = cache_dir or Path(tempfile.gettempdir()) / "callcenter-sipp-dtmf"
    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(repr(([str(p) for p in recordings], gap_ms)).encode()).hexdigest()[:20]
    path = directory / f"keys-{name}.pcap"
    if not path.exists():
        partial = directory / f".{path.name}.{os.getpid()}"
        partial.write_bytes(build_sequence(recordings, gap_ms))
        partial.replace(path)  # atomic: a concurrent caller sees the whole file or none
    return path
