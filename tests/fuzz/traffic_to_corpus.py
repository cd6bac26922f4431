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
#                  stream put in a send-buffer section);
#   nvme           the controller bring-up (the guest's admin commands), then its I/O commands of
#                  each distinct shape with PRP lists of the guest's shape, queues, shadow
#                  doorbells, data pages and LBAs moved into the fake RAM and disk, up to 8 seeds
#                  of at most 256 steps (fuzz_nvme.cpp ops 0, 1, 2, 3, 5, 10);
#   hyperv_hypercall  the distinct synthetic MSR writes and hypercalls (input pages written first),
#                  page addresses moved into the fake RAM (FuzzedDataProvider encoding);
#   hyperv_time    the SynIC, TSC page, VP assist page and STIMER writes with the recorded time
#                  between them (TSC steps and timer runs).
# Identical packets are kept once per transcript and each transcript is capped, so seeds stay
# kilobytes. Usage: traffic_to_corpus.py [--corpus tests/corpus] [--name NAME] [--targets T,...]
# RECORDING... (--targets: only those corpora, e.g. nvme,hyperv_hypercall,hyperv_time).
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


NVME_PAGE = 4096
NVME_DISK_LBAS = 256 * 1024 // 512       # fuzz_nvme.cpp DISK_BYTES / LBA_BYTES.
NVME_QUEUE_ENTRIES = 64                  # fuzz_nvme.cpp max_queue_entries.
NVME_ADMIN_ENTRIES = 32                  # Linux NVME_AQ_DEPTH (drivers/nvme/host/nvme.h).
NVME_MAX_STEPS = 256                     # fuzz_nvme.cpp runs at most 256 steps.


class NvmeScript:
    """Writes fuzz_nvme.cpp's script (op = byte % 11), counting its steps. Fake RAM is 256 pages
    at 0: page 1 admin SQ, 2 admin CQ, 3-31 the queues and shadow-doorbell pages the guest
    created (one each), 32-255 data and PRP list pages, handed out round-robin."""

    def __init__(self):
        self.out = bytearray()
        self.steps = 0
        self.fixed = {}      # guest page -> fake page (queues, shadow doorbells)
        self.next_pool = 32
        self.sq = {}         # qid -> [fake base, size, tail]
        self.cq = {}         # qid -> [size, head]
        self.sq_cq = {0: 0}  # sqid -> cqid
        self.shadow = None   # fake shadow doorbell page, once Doorbell Buffer Config ran

    @staticmethod
    def address(gpa):
        if gpa & 0xFFF == 0 and gpa < 256 * NVME_PAGE:
            return bytes([0, gpa >> 12])       # kind 0: a low RAM page
        return bytes([7, 0]) + struct.pack("<Q", gpa)  # kind 7: raw

    def pool(self):
        page = self.next_pool
        self.next_pool = 32 + (self.next_pool - 31) % 224
        return page * NVME_PAGE

    def fixed_page(self, gpa):
        page = gpa >> 12
        if page not in self.fixed:
            self.fixed[page] = (3 + len(self.fixed)) if len(self.fixed) < 29 else 31
        return self.fixed[page] * NVME_PAGE + (gpa & 0xFFF)

    def command(self, e):
        cdw0, nsid, _, _, _, prp1, prp2, c10, c11, c12, c13, _, _ = e
        out = bytes([cdw0 & 0xFF, (cdw0 >> 8) & 0xC3]) + struct.pack("<H", cdw0 >> 16)
        out += bytes([0]) if nsid == 1 else bytes([200]) + struct.pack("<HH", nsid & 0xFFFF, nsid >> 16)
        out += self.address(prp1) + self.address(prp2)
        out += struct.pack("<HHHHHH", c10 & 0xFFFF, c10 >> 16, c11 & 0xFFFF, c11 >> 16, c12 & 0xFFFF, c12 >> 16)
        return out + bytes([c13 & 0xFF])

    def op(self, data):
        self.out += data
        self.steps += 1

    def doorbell(self, index, value):
        self.op(bytes([3]) + struct.pack("<HH", index * 4, value))

    def shadow_write(self, qid):
        if self.shadow is not None and qid in self.sq and qid in self.cq and qid != 0:
            value = self.sq[qid][2] | (self.cq[self.sq_cq[qid]][1] << 32)
            self.op(bytes([5]) + self.address(self.shadow + 8 * qid) + bytes([7, 0]) + struct.pack("<Q", value))

    def enable(self):
        self.op(bytes([0, NVME_ADMIN_ENTRIES - 2]) + self.address(NVME_PAGE) + self.address(2 * NVME_PAGE) + bytes([1]))
        self.sq[0] = [NVME_PAGE, NVME_ADMIN_ENTRIES, 0]
        self.cq[0] = [NVME_ADMIN_ENTRIES, 0]

    def complete(self, sqid):
        cqid = self.sq_cq.get(sqid, 0)
        if cqid in self.cq:
            size, head = self.cq[cqid]
            self.cq[cqid][1] = (head + 1) % size
            self.shadow_write(sqid)
            self.doorbell(2 * cqid + 1, self.cq[cqid][1])

    def admin(self, e):
        e = list(e)
        opcode = e[0] & 0xFF
        if opcode in (0x05, 0x01):  # Create I/O CQ / SQ: queue memory, size clamped to the fake's limit.
            qid, size = e[7] & 0xFFFF, min((e[7] >> 16) + 1, NVME_QUEUE_ENTRIES)
            e[5] = self.fixed_page(e[5])
            e[7] = qid | ((size - 1) << 16)
            if opcode == 0x05:
                self.cq[qid] = [size, 0]
            else:
                self.sq[qid] = [e[5], size, 0]
                self.sq_cq[qid] = e[8] >> 16
        elif opcode == 0x7C:  # Doorbell Buffer Config: shadow and EventIdx pages.
            e[5], e[6] = self.fixed_page(e[5]), self.fixed_page(e[6])
            self.shadow = e[5]
        else:
            e[5] = self.pool() + (e[5] & 0xFFF) if e[5] else 0
            e[6] = self.pool() if e[6] else 0
        self.op(bytes([1]) + self.command(e) + bytes([0]))
        self.sq[0][2] = (self.sq[0][2] + 1) % NVME_ADMIN_ENTRIES
        if opcode != 0x0C:  # Asynchronous Event Requests stay outstanding.
            self.complete(0)

    def io(self, sqid, e, prp_list):
        if sqid not in self.sq:
            return
        e = list(e)
        opcode = e[0] & 0xFF
        if opcode in (1, 2, 8):  # Read, Write, Write Zeroes: SLBA inside the fake namespace.
            lbas = (e[9] & 0xFFFF) + 1
            if lbas > NVME_DISK_LBAS:
                return
            slba = e[7] | (e[8] << 32)
            slba %= NVME_DISK_LBAS - lbas + 1
            e[7], e[8] = slba & 0xFFFFFFFF, slba >> 32
        lists = []
        if opcode in (1, 2):
            length = ((e[9] & 0xFFFF) + 1) * 512
            first = min(length, NVME_PAGE - (e[5] & 0xFFF))
            e[5] = self.pool() + (e[5] & 0xFFF)
            remaining = length - first
            if remaining == 0:
                e[6] = 0
            elif remaining <= NVME_PAGE:
                e[6] = self.pool()
            else:  # A PRP list with the guest's shape (offset, chaining, contiguity) in fake pages.
                if not prp_list:
                    return
                pages_left = (remaining + NVME_PAGE - 1) // NVME_PAGE
                at = self.pool() + (e[6] & 0xFF8)
                e[6] = at
                k, previous = 0, None
                while pages_left > 0:
                    in_page = (NVME_PAGE - (at & 0xFFF)) // 8
                    chained = pages_left > in_page
                    data_entries = in_page - 1 if chained else pages_left
                    for i in range(data_entries):
                        guest = prp_list[k] if k < len(prp_list) else 0
                        if previous is not None and guest != previous + NVME_PAGE:
                            self.pool()  # Not contiguous in the guest: not in the fake either.
                        previous = guest
                        lists.append((at + 8 * i, self.pool()))
                        k += 1
                    pages_left -= data_entries
                    if chained:
                        k += 1
                        following = self.pool()
                        lists.append((at + 8 * data_entries, following))
                        at = following
        elif e[5]:
            e[5] = self.pool() + (e[5] & 0xFFF)
            e[6] = self.pool() if e[6] else 0
        for where, value in lists:
            self.op(bytes([5]) + self.address(where) + bytes([7, 0]) + struct.pack("<Q", value))
        base, size, tail = self.sq[sqid]
        self.op(bytes([2]) + bytes([7, 0]) + struct.pack("<Q", base + 64 * tail) + self.command(e))
        self.sq[sqid][2] = (tail + 1) % size
        self.shadow_write(sqid)
        self.doorbell(2 * sqid, self.sq[sqid][2])
        self.op(bytes([10]))  # The back-end completes it.
        self.complete(sqid)


SQE = struct.Struct("<IIIIQQQIIIIII")


def nvme_seeds(recs, cap=8):
    """fuzz_nvme seeds: the guest's admin commands in order (the bring-up), then its I/O commands
    of each distinct shape (opcode, length, PRP1 offset, list offset), with their PRP lists, split
    into seeds of at most 256 steps that each start with the admin bring-up."""
    commands = []
    lists = {}
    for r in recs:
        if r["kind"] == 4 and len(r["payload"]) == 64:
            commands.append((r["id"], SQE.unpack(r["payload"])))
        elif r["kind"] == 5:
            n = len(r["payload"]) // 8
            lists[(r["id"], r["type"], len(commands))] = list(struct.unpack(f"<{n}Q", r["payload"][:8 * n]))
    if not commands:
        return []
    # The list record follows its command: key it by the command's index.
    by_index = {index - 1: entries for (sqid, cid, index), entries in lists.items()}
    # The guest's admin commands but the deletes of its shutdown (the I/O queues must live).
    admin = [e for sqid, e in commands if sqid == 0 and e[0] & 0xFF not in (0x00, 0x04)]
    shapes, io = set(), []
    for index, (sqid, e) in enumerate(commands):
        if sqid == 0:
            continue
        opcode = e[0] & 0xFF
        entries = by_index.get(index)
        shape = (opcode, e[9] & 0xFFFF if opcode in (1, 2, 8) else 0, e[5] & 0xFFF, (e[6] & 0xFFF) if entries else -1,
                 e[9] & 0xFFFF0000)
        if shape not in shapes:
            shapes.add(shape)
            io.append((sqid, e, entries))
    seeds = []
    while io and len(seeds) < cap:
        script = NvmeScript()
        script.enable()
        # Bring-up: the admin commands up to the last queue creation (shutdown's deletes later).
        for e in admin:
            script.admin(e)
        taken = 0
        for sqid, e, entries in io:
            before = (len(script.out), script.steps, [list(v) for v in script.sq.values()], [list(v) for v in script.cq.values()], script.next_pool)
            script.io(sqid, e, entries)
            if script.steps > NVME_MAX_STEPS:
                script.out = script.out[:before[0]]
                break
            taken += 1
        if taken == 0:
            break
        seeds.append(bytes(script.out))
        io = io[taken:]
    return seeds


class Fdp:
    """Builds input for LLVM's FuzzedDataProvider (compiler-rt FuzzedDataProvider.h): integers are
    consumed from the end of the data, most significant byte first, as few bytes as the range
    needs; ConsumeBool is one byte's bit 0. Values here are always inside their range."""

    def __init__(self):
        self.tail = bytearray()  # In the order the provider reads it.

    def range(self, value, low, high):
        span, n = high - low, 0
        while n < 8 and span >> (8 * n) > 0:
            n += 1
        assert low <= value <= high
        self.tail += (value - low).to_bytes(n, "big") if n else b""

    def u(self, value, bits):
        self.range(value, 0, (1 << bits) - 1)

    def data(self):
        return bytes(reversed(self.tail))


HV_RAM_PAGES = 16                  # fuzz_hyperv_*.cpp RAM_BYTES / PAGE_SIZE.
HV_GPA_MSRS = {0x40000001, 0x40000021, 0x40000073, 0x40000082, 0x40000083}  # HYPERCALL, REFERENCE_TSC,
#                                  VP_ASSIST_PAGE, SIEFP, SIMP: a page address in bits 63:12.
HV_INPUT_PAGE, HV_OUTPUT_PAGE = 14, 15


class HvPages:
    """Guest pages the recorded MSRs name -> fake pages 1..13 (one each, per VP as recorded)."""

    def __init__(self):
        self.pages = {}

    def map(self, value):
        page = value >> 12
        if page == 0:
            return value
        if page not in self.pages:
            self.pages[page] = 1 + len(self.pages) % 13
        return (self.pages[page] << 12) | (value & 0xFFF)


def hv_records(recs):
    return [r for r in recs if r["kind"] in (6, 7)]


def hyperv_hypercall(recs, cap=96):
    """fuzz_hyperv_hypercall: the guest's synthetic MSR writes (each distinct MSR/value once, at most
    4 per MSR, page addresses moved into the fake RAM) and its distinct hypercalls with their input pages written
    first (op 3 scribbles), in recorded order."""
    f, pages, seen, kept, per_msr = Fdp(), HvPages(), set(), 0, {}
    for r in hv_records(recs):
        vp = min(r["flags"], 2)
        if r["kind"] == 6:
            value = struct.unpack("<Q", r["payload"][:8])[0]
            if r["id"] in HV_GPA_MSRS:
                value = pages.map(value)
            key = (6, vp, r["id"], value)
            per_msr[r["id"]] = per_msr.get(r["id"], 0) + 1
            # Each distinct write once, at most 4 per MSR (Linux rewrites STIMER0_COUNT each tick).
            if key in seen or per_msr[r["id"]] > 4 or not 0x40000000 <= r["id"] <= 0x40000200:
                continue
            f.range(vp, 0, 2), f.range(0, 0, 8), f.u(0, 8)  # vp, op 0 (WRMSR), not the array form
            f.range(r["id"], 0x40000000, 0x40000200), f.u(0, 8), f.u(value, 64)
        else:
            control, rdx, r8 = struct.unpack("<QQQ", r["header"][:24])
            body = r["payload"]
            key = (7, control, body if body else rdx)
            if key in seen or kept >= cap:
                continue
            kept += 1
            fast = control & (1 << 16)
            if not fast:
                rdx = (HV_INPUT_PAGE << 12) | (rdx & 0xFFF)
                r8 = (HV_OUTPUT_PAGE << 12) | (r8 & 0xFFF) if r8 else 0
                body = body[:4096 - (rdx & 0xFFF)]
                for at in range(0, len(body) - len(body) % 8, 8):
                    word = int.from_bytes(body[at:at + 8], "little")
                    if word:  # RAM is all zeroes before each input.
                        f.range(vp, 0, 2), f.range(3, 0, 8)
                        f.range((rdx & 0xFFFF) + at, 0, HV_RAM_PAGES * 4096 - 8), f.u(word, 64)
            f.range(vp, 0, 2), f.range(2, 0, 8), f.u(0, 8), f.u(control & 0xFFFF, 16)
            if control >> 16:
                f.u(1, 8), f.u(control & ~0xFFFF, 64)
            else:
                f.u(0, 8)
            if fast:
                f.range(2, 0, 3), f.u(rdx, 64)
            else:
                f.range(1, 0, 3), f.range(rdx, 0, HV_RAM_PAGES * 4096 + 4096)
            f.u(r8, 64)
        seen.add(key)
    return f.data() if f.tail else b""


def hyperv_time(recs, cap=160):
    """fuzz_hyperv_time: the guest's SynIC, reference TSC page, VP assist page and STIMER writes,
    with the recorded time between them (TSC steps, then the timer engine runs). Timer deadlines
    keep their distance from the guest's reference time (estimated so the nearest is 0)."""
    tsc_hz = 2_596_094_000  # fuzz_hyperv_time.cpp TSC_HZ.
    synic = [0x40000080, 0x40000083, 0x40000082, 0x40000084, 0x40000090, 0x40000092, 0x40000093, 0x4000009F,
             0x40000021, 0x40000003, 0x40000073]  # SYNIC_MSRS, in its order.
    writes = [r for r in hv_records(recs) if r["kind"] == 6]
    counts = [r for r in writes if 0xB0 <= r["id"] - 0x40000000 <= 0xB7 and (r["id"] & 1)]
    t0 = writes[0]["ns"] if writes else 0
    # Reference time (100 ns units) at a record = base + elapsed; base so no deadline is in the past.
    base = min((struct.unpack("<Q", r["payload"][:8])[0] - (r["ns"] - t0) // 100 for r in counts), default=0)
    f, pages, seen, last, kept = Fdp(), HvPages(), set(), None, 0
    f.u(0, 32)  # The starting TSC.
    for r in writes:
        if kept >= cap:
            break
        msr, vp = r["id"], min(r["flags"], 2)
        value = struct.unpack("<Q", r["payload"][:8])[0]
        if last is not None and r["ns"] - last > 1_000_000:  # Time passed: the clock moves, timers run.
            steps = min(4, (r["ns"] - last) // 10_000_000 + 1)
            ticks = min(tsc_hz // 100, (r["ns"] - last) * tsc_hz // 1_000_000_000 // steps)
            for _ in range(steps):
                f.range(vp, 0, 2), f.range(3, 0, 7), f.u(1, 8), f.range(ticks, 0, tsc_hz // 100)
                f.range(vp, 0, 2), f.range(4, 0, 7)
        last = r["ns"]
        if msr in synic:
            if msr in HV_GPA_MSRS:
                value = pages.map(value)
            if (value >> 12) != 0 and (value & 0xFFE) == 0 and (value >> 12) <= HV_RAM_PAGES:
                form = lambda: (f.u(1, 8), f.range(0, 0, 3), f.range(value >> 12, 0, HV_RAM_PAGES), f.range(value & 1, 0, 1))
            elif value <= 0x300FF:
                form = lambda: (f.u(0, 8), f.range(value, 0, 0x300FF))
            else:
                continue
            if (msr, vp, value) in seen:
                continue
            seen.add((msr, vp, value))
            f.range(vp, 0, 2), f.range(1, 0, 7), f.range(synic.index(msr), 0, len(synic) - 1)
            form()
        elif 0xB0 <= msr - 0x40000000 <= 0xB7:
            timer = (msr - 0x400000B0) // 2
            f.range(vp, 0, 2), f.range(0, 0, 7), f.range(timer, 0, 3)
            if msr & 1:  # COUNT
                now = base + (r["ns"] - t0) // 100
                f.u(0, 8)
                if value < 20_000:
                    f.range(1, 0, 3), f.range(value, 0, 20_000)
                else:
                    f.range(0, 0, 3), f.range(max(0, min(value - now, 100_000)), 0, 100_000)
            else:  # CONFIG, verbatim
                f.u(1, 8), f.u(1, 8), f.u(value, 64)
        else:
            continue
        kept += 1
    return f.data() if kept else b""


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
    parser.add_argument("--targets", default="")
    parser.add_argument("recordings", nargs="+")
    args = parser.parse_args()
    corpus = Path(args.corpus)
    wanted = set(filter(None, args.targets.split(",")))

    def write_if(corpus, target, name, seeds):
        if not wanted or target in wanted:
            write(corpus, target, name, seeds)
    for index, recording in enumerate(args.recordings):
        name = f"{args.name}{index}" if len(args.recordings) > 1 else args.name
        recs = list(records(Path(recording)))
        messages = [r for r in recs if r["kind"] == 1]
        packets = [r for r in recs if r["kind"] == 2]
        streams = unique([r for r in recs if r["kind"] == 3])
        write_if(corpus, "vmbus_message", name, [vmbus_message(messages)])
        dm = [p for p in packets if p["guid"] == DM]
        # Status reports repeat every second: keep the first few.
        dm = [p for k, p in enumerate(dm) if not (p["payload"][:1] == b"\x05" and k > 8)]
        write_if(corpus, "hv_balloon", name, [hv_balloon(dm)] if dm else [])
        write_if(corpus, "ic", name, [ic(subject, unique([p for p in packets if p["guid"] == guid])[:8 if subject == 3 else 40])
                                   for guid, subject in ICS.items()])
        relids = sorted({p["id"] for p in packets if p["guid"] not in ICS and p["guid"] not in (DM, NIC)})
        write_if(corpus, "hvsock", name, [hvsock([p for p in packets if p["id"] == r]) for r in relids][:2])
        write_if(corpus, "netvsc", name, [netvsc(streams)] if streams else [])
        write_if(corpus, "nvme", name, nvme_seeds(recs))
        write_if(corpus, "hyperv_hypercall", name, [hyperv_hypercall(recs)])
        write_if(corpus, "hyperv_time", name, [hyperv_time(recs)])


if __name__ == "__main__":
    main()
