#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Turns guest traffic recordings (vmm/backends/traffic_recorder.hpp; made by
# tests/fuzz/record_traffic.py or any run with MICROVMM_RECORD_GUEST_TRAFFIC=DIR) into seeds in
# each fuzz target's own input format, written to tests/corpus/<target>/recorded-<name>-<n>:
#   vmbus_message  the guest's HvPostMessage payloads as raw-message steps
#                  (tests/support/vmbus_fuzz_message_case.cpp op 0, at most 256);
#   hv_balloon     DM packets as verbatim-packet actions (dm_fuzz_driver.cpp guest_message 0xFF
#                  form), after an open, with the host's set_target before each balloon,
#                  unballoon and hot-add response that the guest answered and a tick after the
#                  handshake;
#   ic             per IC (shutdown, heartbeat, time sync, KVP) an open, then each packet verbatim
#                  (fuzz_ic.cpp op 3, 0xFF length form) with its transaction id and flags, after a
#                  clock step when the guest answered a timer-driven request (a recorded gap);
#   hvsock         two connections' vmpipe data packets, one per size, and the FIN
#                  (fuzz_hvsock.cpp ops 2 and 7);
#   netvsc         the RNDIS messages the device gathered from guest memory (fuzz_netvsc.cpp op 2,
#                  stream put in a send-buffer section).
# Identical packets are kept once per transcript and each transcript is capped, so seeds stay
# kilobytes. Usage: traffic_to_corpus.py [--corpus tests/corpus] [--name NAME] RECORDING...
import argparse
import struct
import uuid
from pathlib import Path

MAGIC = b"MVTRAF1\n"
HEADER = struct.Struct("<B3xIIIQQ16sII")  # TrafficRecordHeader (56 bytes).
assert HEADER.size == 56
DM = uuid.UUID("525074dc-8985-46e2-8057-a307dc18a502").bytes_le
NIC = uuid.UUID("f8615163-df3e-46c5-913f-f2d2f965ed0e").bytes_le
ICS = {  # Class GUID -> fuzz_ic subject index (shutdown, heartbeat, time sync, KVP).
    uuid.UUID("0e0b6031-5213-4934-818b-38d90ced39db").bytes_le: 0,
    uuid.UUID("57164f39-9115-4e78-ab55-382f3bd5422d").bytes_le: 1,
    uuid.UUID("9527e630-d0ae-497b-adce-e80ab0175caf").bytes_le: 2,
    uuid.UUID("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6").bytes_le: 3,
}
MAX_SEED_BYTES = 48 * 1024


def records(path: Path):
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise SystemExit(f"{path}: not a guest traffic recording")
    at = len(MAGIC)
    while at + HEADER.size <= len(data):
        kind, ident, typ, vp_or_flags, ns, tid, guid, hlen, plen = HEADER.unpack_from(data, at)
        at += HEADER.size
        header, payload = data[at:at + hlen], data[at + hlen:at + hlen + plen]
        at += hlen + plen
        yield dict(kind=kind, id=ident, type=typ, flags=vp_or_flags, ns=ns, tid=tid, guid=guid, header=header,
                   payload=payload)


def unique(items, key=lambda r: r["payload"]):
    seen, out = set(), []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def vmbus_message(messages):
    """tests/support/vmbus_fuzz_input.hpp reads every field from the front, in order."""
    out = bytearray([0])  # refuse_every_nth = 0: the SynIC port never refuses.
    for m in messages[:128]:  # The case runs at most 256 steps.
        body = m["payload"][:250]
        # op 0 (raw message), its length, the bytes, connection index (1 -> 0, 4 -> 1), vp; then
        # op 7: the guest takes the host's answer out of its SynIC slot, as Linux does.
        out += bytes([0, len(body)]) + body + bytes([0 if (m["id"] & 0xFFFF) == 1 else 1, m["flags"] & 3, 7])
    return bytes(out)


def dm_u16(value):
    return struct.pack("<H", value)


def hv_balloon(packets):
    boot_pages = 160 + 64 * 256 - 256  # dm_fuzz_driver.cpp BOOT_LOW + BOOT_MAIN.
    out = bytearray([0])  # act 0: on_open

    def target(pages):
        out.extend(bytes([3]) + struct.pack("<I", pages)[:3])  # act 3: set_target (below: take(3))

    pending_balloon = 0
    for i, p in enumerate(packets):
        body = p["payload"]
        mtype = body[0] if body else 0
        if mtype == 7 and len(body) >= 16:  # DM_BALLOON_RESPONSE: the host asked for this much.
            # dm_balloon_response (hv_balloon.c:303-309): header(8), reserved, more_pages:1 |
            # range_count:31, then ranges: start_page:40 | page_cnt:24.
            if pending_balloon == 0:
                total = 0
                for q in packets[i:]:
                    b = q["payload"]
                    if not (b[:1] == b"\x07" and len(b) >= 16):
                        continue
                    word = struct.unpack_from("<I", b, 12)[0]
                    count = min(word >> 1, (len(b) - 16) // 8)
                    total += sum(struct.unpack_from("<Q", b, 16 + 8 * k)[0] >> 40 for k in range(count))
                    if not word & 1:
                        break
                pending_balloon = max(total, 1)
                target(boot_pages - pending_balloon)
            if not struct.unpack_from("<I", body, 12)[0] & 1:
                pending_balloon = 0
        elif mtype == 9:  # DM_UNBALLOON_RESPONSE
            target(boot_pages)
        elif mtype == 11 and len(body) >= 16:  # DM_MEM_HOT_ADD_RESPONSE (hv_balloon.c:377-381).
            target(boot_pages + struct.unpack_from("<I", body, 8)[0])
        out += bytes([6, 6, 0xFF]) + dm_u16(len(body)) + body
        if mtype == 3:  # After the capabilities report: past the post-connect delay.
            out += bytes([4]) + struct.pack("<I", 69999)[:3]
    return bytes(out)


def ic(subject, packets):
    out = bytearray([subject, 0])  # open
    last = None
    for p in packets:
        if last is not None and p["ns"] - last > 500_000_000:  # A timer-driven request came first.
            steps = min(255, (p["ns"] - last + 99_999_999) // 100_000_000)
            out += bytes([subject, 5, steps])
        last = p["ns"]
        if subject == 0 and len(out) > 2:  # The guest answers the host's shutdown request.
            out += bytes([0, 6, 0])
        body = p["payload"][:4 * 4096]
        tid = p["tid"] if p["tid"] <= 255 else 255
        out += bytes([subject, 3, 0xFF]) + dm_u16(len(body)) + body + bytes([1, tid, p["flags"] & 0xFF])
    return bytes(out)


def hvsock(packets):
    out = bytearray([0, 0, 3, 0])  # service byte, flag, 32 KiB buffer; op 0: open
    data = []
    for p in packets:
        body = p["payload"]
        if len(body) >= 8:
            ptype, size = struct.unpack_from("<II", body)
            if ptype == 1 and size <= len(body) - 8:
                data.append(p)
    # The first packets of each size and the FIN (data_size 0): the stream's shape, not its bulk.
    sizes = set()
    kept, fin = [], []
    for p in data:
        size = struct.unpack_from("<I", p["payload"], 4)[0]
        if size == 0:
            fin = [p]  # Nothing may follow it.
            break
        if size not in sizes and len(kept) < 6:
            sizes.add(size)
            kept.append(p)
    kept += fin
    for p in kept:
        body = p["payload"]
        size = struct.unpack_from("<I", body, 4)[0]
        data = body[8:8 + size]
        out += bytes([2, 1]) + dm_u16(size) + bytes(b ^ (i & 0xFF) for i, b in enumerate(data))
        out += bytes([7]) + dm_u16(0xFFFF)  # The host owner takes everything.
    return bytes(out)


def netvsc(streams):
    out = bytearray()
    for s in streams[:120]:
        body = s["payload"]
        if not body or len(body) >= 2048:
            continue
        out += bytes([2]) + dm_u16(len(body)) + body
        if len(body) >= 8:
            out += bytes([0])  # keep the recorded header
        out += bytes([1, 1, 1])  # in a section: index 1, no size override (same byte either order)
        out += bytes([6])  # the owner takes frames
    return bytes(out)


def write(corpus: Path, target: str, name: str, seeds):
    written = []
    for n, seed in enumerate(s for s in seeds if s):
        seed = seed[:MAX_SEED_BYTES]
        path = corpus / target / f"recorded-{name}-{n}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(seed)
        written.append(f"{path} ({len(seed)} bytes)")
    for line in written:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parents[1] / "corpus"))
    parser.add_argument("--name", default="linux")
    parser.add_argument("recordings", nargs="+")
    args = parser.parse_args()
    corpus = Path(args.corpus)
    for index, recording in enumerate(args.recordings):
        name = f"{args.name}{index}" if len(args.recordings) > 1 else args.name
        recs = list(records(Path(recording)))
        messages = [r for r in recs if r["kind"] == 1]
        packets = [r for r in recs if r["kind"] == 2]
        streams = unique([r for r in recs if r["kind"] == 3])
        write(corpus, "vmbus_message", name, [vmbus_message(messages)])
        dm = [p for p in packets if p["guid"] == DM]
        # Status reports repeat every second: keep the first few.
        dm = [p for k, p in enumerate(dm) if not (p["payload"][:1] == b"\x05" and k > 8)]
        write(corpus, "hv_balloon", name, [hv_balloon(dm)] if dm else [])
        write(corpus, "ic", name, [ic(subject, unique([p for p in packets if p["guid"] == guid])[:8 if subject == 3 else 40])
                                   for guid, subject in ICS.items()])
        relids = sorted({p["id"] for p in packets if p["guid"] not in ICS and p["guid"] not in (DM, NIC)})
        write(corpus, "hvsock", name, [hvsock([p for p in packets if p["id"] == r]) for r in relids][:2])
        write(corpus, "netvsc", name, [netvsc(streams)] if streams else [])


if __name__ == "__main__":
    main()
