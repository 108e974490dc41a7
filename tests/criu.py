#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Whole processes checkpointed and restored with a real CRIU (TAP).

criu_subject makes one timer of every kind.  It runs twice: under `ptimers
exec` (the engine's timers, in its memory) and as is (the kernel's), each
dumped with `criu dump`, left dead for a while, and brought back with
`criu restore`, with CRIU's time namespace and without it
(--unprivileged).  After the restore the same checks hold for both: the
IDs, each timer's remaining time (less only the time the process ran), its
interval, a timer due after the restore firing when it should, the signal
left pending at the dump, overruns, SIGEV_THREAD and SIGEV_THREAD_ID, a
CPU-clock timer.  Where CRIU's restore of kernel timers loses something
the engine keeps, the kernel's value is printed as a note.  Then twenty
dumps and restores in a row with `ptimers ls` reading all the while.

    criu.py PTIMERS SUBJECT CRIU_BUILD_DIR
"""
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

NS = 1_000_000_000
GAP = 3.0           # seconds a dumped process stays dead
FIRE_AFTER = 5.0    # the subject's one-shot timer, from its start
SLACK = 0.75        # seconds of timing slack in a check
SI_TIMER = -2
NAMES = ["tick", "realabs", "realrel", "boot", "pcpu", "tcpu", "tid", "thread", "none",
         "pend", "ovr", "once", "prof", "pprof"]


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {name}", flush=True)
        if not cond:
            self.failed += 1
            for line in str(diag or "").splitlines():
                print(f"# {line}", flush=True)
        return cond

    def note(self, text):
        for line in text.splitlines():
            print(f"# {line}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)


tap = Tap()


def subreaper():
    """Restored processes become our children: we can wait for them."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def wait_until(cond, timeout, step=0.005):
    """Poll cond() until it returns something true, or timeout (None)."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= end:
            return None
        time.sleep(step)


class Subject:
    def __init__(self, work, engine, ptimers, program):
        self.work = work
        self.engine = engine
        self.log = os.path.join(work, "subject.log")
        self.seq = 0
        argv = [program, f"--fire-after={FIRE_AFTER}"]
        if engine:
            argv = [ptimers, "exec", "--require-engine", "--"] + argv
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                     start_new_session=True, close_fds=True)
        os.close(fd)
        self.pid = self.proc.pid
        self.started = time.monotonic()
        ready = wait_until(lambda: self.find(r"^ready pid=(\d+) probe=(\d+)"), 10)
        if not ready:
            raise RuntimeError(f"the subject did not start: {self.tail()}")
        if int(ready.group(1)) != self.pid:
            raise RuntimeError(f"the subject runs as {ready.group(1)}, not {self.pid}")
        self.probe = int(ready.group(2))

    def lines(self):
        """Whole lines only: a line the program is still writing (a write
        that crosses a page of the log shows up in two parts) is left for
        the next look."""
        with open(self.log) as f:
            text = f.read()
        return text[:text.rfind("\n") + 1].splitlines()

    def tail(self, n=8):
        return "\n".join(self.lines()[-n:])

    def find(self, pattern, after=0):
        rx = re.compile(pattern)
        for line in self.lines()[after:]:
            m = rx.search(line)
            if m:
                return m
        return None

    def send(self, sig):
        os.kill(self.pid, sig)

    def report(self):
        """Ask for a report; {name: {id, rem, int, ovr}} and the end line's values."""
        self.seq += 1
        mark = len(self.lines())
        self.send(signal.SIGUSR1)
        end = wait_until(lambda: self.find(rf"^end {self.seq} (.*)", mark), 10)
        if not end:
            raise RuntimeError(f"no report {self.seq}: {self.tail()}")
        timers = {}
        for line in self.lines()[mark:]:
            m = re.match(r"timer (\w+) id=(-?\d+) rem=(-?\d+) int=(-?\d+) ovr=(-?\d+)", line)
            if m:
                timers[m.group(1)] = {k: int(v) for k, v in zip(("id", "rem", "int", "ovr"),
                                                                m.groups()[1:])}
            if line.startswith(f"end {self.seq} "):
                break
        values = dict(kv.split("=") for kv in end.group(1).split())
        return timers, {k: int(v) for k, v in values.items()}, time.monotonic()


class Criu:
    def __init__(self, binary, work):
        self.binary = binary
        self.work = work
        self.count = 0

    def run(self, what, args):
        self.count += 1
        log = f"{what}-{self.count}.log"
        d = os.path.join(self.work, "images")
        os.makedirs(d, exist_ok=True)
        r = subprocess.run([self.binary, what, "-D", d, "-o", log, "-v4"] + args,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        text = ""
        if r.returncode != 0:
            try:
                with open(os.path.join(d, log)) as f:
                    text = "\n".join(l for l in f.read().splitlines() if "Error" in l)[-2000:]
            except OSError:
                pass
        return r.returncode == 0, (r.stderr + text).strip()

    def dump(self, pid):
        return self.run("dump", ["-t", str(pid)])

    def restore(self, extra):
        return self.run("restore", ["-d"] + extra)


def reap(pid, subject):
    """The dumped process is gone (CRIU kills it): wait for it."""
    if subject.proc and subject.proc.pid == pid and subject.proc.returncode is None:
        subject.proc.wait(timeout=30)
        subject.proc = None
        return
    os.waitpid(pid, 0)


def kernel_timer_ids(pid):
    """The IDs /proc/PID/timers lists, or None."""
    try:
        with open(f"/proc/{pid}/timers") as f:
            return {int(l.split()[1]) for l in f if l.startswith("ID:")}
    except OSError:
        return None


def hand_off_possible():
    """Can this kernel create a timer with a given ID (the engine's handoff)?"""
    import ctypes
    return ctypes.CDLL(None, use_errno=True).prctl(77, 2, 0, 0, 0) >= 0


def listing(ptimers, pid, engine):
    """The IDs as an outside reader sees them: ptimers ls, or the kernel's file."""
    if engine:
        r = subprocess.run([ptimers, "ls", "--json", str(pid)], capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            return None, r.stderr.strip()
        return sorted(t["id"] for t in json.loads(r.stdout)["timers"]), r.stderr.strip()
    with open(f"/proc/{pid}/timers") as f:
        return sorted(int(l.split()[1]) for l in f if l.startswith("ID:")), ""



def cycle(mode, engine, ptimers, program, criu_bin, extra):
    """One process, one dump, GAP seconds dead, one restore, every check."""
    kind = "engine" if engine else "kernel"
    label = f"{kind}, {mode}"
    with tempfile.TemporaryDirectory(prefix="ptimers-criu-") as work:
        s = Subject(work, engine, ptimers, program)
        criu = Criu(criu_bin, work)
        # Let the blocked periodic timer gather overruns.
        time.sleep(1.0)
        a, a_end, t_a = s.report()
        ids_a, _ = listing(ptimers, s.pid, engine)
        ok, why = criu.dump(s.pid)
        t_dump = time.monotonic()
        if not tap.ok(ok, f"{label}: criu dump", why):
            s.send(signal.SIGKILL)
            reap(s.pid, s)
            return
        reap(s.pid, s)
        if s.find(r"^fired once"):
            tap.ok(False, f"{label}: the one-shot timer was still due at the dump",
                   "it fired before: the machine was too slow to get here in "
                   f"{FIRE_AFTER} s")
            return
        time.sleep(GAP)  # the process is dead meanwhile: this is the gap itself
        ok, why = criu.restore(extra)
        t_restore = time.monotonic()
        if not tap.ok(ok, f"{label}: criu restore", why):
            return
        try:
            check_restored(s, label, engine, ptimers, a, a_end, t_a, t_dump, t_restore, ids_a)
        finally:
            try:
                s.send(signal.SIGTERM)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(s.pid, 0)
            tap.ok(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
                   f"{label}: the restored process exits cleanly", f"status {status:#x}\n{s.tail()}")


def check_restored(s, label, engine, ptimers, a, a_end, t_a, t_dump, t_restore, ids_a):
    b, b_end, t_b = s.report()
    ran = (t_b - t_a) - (t_restore - t_dump)  # at most this long alive between the reports
    tap.ok(all(b[n]["id"] == a[n]["id"] for n in NAMES),
           f"{label}: every timer has its ID", "\n".join(
               f"{n}: {a[n]['id']} -> {b[n]['id']}" for n in NAMES if b[n]["id"] != a[n]["id"]))
    tap.ok(all(b[n]["int"] == a[n]["int"] for n in NAMES), f"{label}: every interval is kept")

    # The time each had left, less only what the process ran: on the
    # monotonic, boot-time and CPU clocks, relative wall-clock timers too.
    kept = ["realrel", "boot", "pcpu", "tcpu", "tid", "thread", "none", "once", "prof"]
    bad = []
    for n in kept:
        spent = (a[n]["rem"] - b[n]["rem"]) / NS
        if not (-0.1 <= spent <= ran + SLACK):
            bad.append(f"{n}: {a[n]['rem'] / NS:.3f} s left, then {b[n]['rem'] / NS:.3f} s "
                       f"(used {spent:.3f} s; it ran at most {ran:.3f} s, dead {GAP} s)")
    tap.ok(not bad, f"{label}: each timer keeps the time it had left", "\n".join(bad))

    # An absolute wall-clock timer: the kernel's keeps its deadline; CRIU
    # re-arms kernel timers relative, so it moves by the time dead.
    spent = (a["realabs"]["rem"] - b["realabs"]["rem"]) / NS
    if engine:
        tap.ok(abs(spent - (t_b - t_a)) <= SLACK,
               f"{label}: the absolute wall-clock timer keeps its deadline",
               f"{spent:.3f} s of it went in {t_b - t_a:.3f} s")
    else:
        tap.note(f"{label}: CRIU re-armed the absolute wall-clock timer relative: "
                 f"{spent:.3f} s of it went in {t_b - t_a:.3f} s (its deadline moved by the "
                 "time dead)")

    # Still ticking.
    ticks_b = b_end["ticks"]
    more = wait_until(lambda: s.report()[1]["ticks"] > ticks_b, 3, step=0.2)
    tap.ok(bool(more), f"{label}: the periodic timer goes on ticking")
    if engine:
        # Its signals taken as they come, the 100 ms ticker was handed to a
        # kernel timer of its ID (src/handoff.h): CRIU carried that across.
        handed = kernel_timer_ids(s.pid)
        if handed is None:
            tap.note(f"{label}: /proc/{s.pid}/timers unreadable")
        elif hand_off_possible():
            tap.ok(a["tick"]["id"] in handed,
                   f"{label}: the ticker's kernel timer, its own ID, came back with CRIU",
                   f"tick ID {a['tick']['id']}, kernel timers {sorted(handed)}")
            # So was the profiler's, on its thread's CPU clock.
            tap.ok(a["prof"]["id"] in handed,
                   f"{label}: the profiler's kernel CPU timer, its own ID, came back with CRIU",
                   f"prof ID {a['prof']['id']}, kernel timers {sorted(handed)}")
            # And one on the process's CPU clock, its signal to the process.
            tap.ok(a["pprof"]["id"] in handed,
                   f"{label}: the process profiler's kernel CPU timer, its own ID, came back with CRIU",
                   f"pprof ID {a['pprof']['id']}, kernel timers {sorted(handed)}")

    ids_b, why = listing(ptimers, s.pid, engine)
    tap.ok(ids_b == ids_a and ids_b is not None,
           f"{label}: {'ptimers ls' if engine else '/proc/PID/timers'} shows the same IDs",
           f"before {ids_a}\nafter  {ids_b} {why}")

    # The one-shot timer fires when it had left to go.
    left = a["once"]["rem"] / NS - (t_dump - t_a)
    fired = wait_until(lambda: s.find(r"^fired once value=66"), left + 5)
    t_fired = time.monotonic()
    after = t_fired - t_restore
    tap.ok(fired and abs(after - left) <= SLACK + 0.25,
           f"{label}: the timer due after the restore fires on time",
           f"due {left:.3f} s after the restore, fired after {after:.3f} s" if fired
           else f"did not fire within {left + 5:.1f} s")

    if engine:
        with tempfile.NamedTemporaryFile(suffix=".img") as img:
            r = subprocess.run([ptimers, "checkpoint", str(s.pid), "-o", img.name],
                               capture_output=True, text=True, timeout=10)
            tap.ok(r.returncode == 0 and os.path.getsize(img.name) > 0,
                   f"{label}: ptimers checkpoint reads the restored process", r.stderr)

    mark = len(s.lines())
    s.send(signal.SIGUSR2)
    if not tap.ok(wait_until(lambda: s.find(r"^checked$", mark), 20),
                  f"{label}: the checks after the restore ran", s.tail()):
        return
    t_checked = time.monotonic()
    got = {}
    for line in s.lines()[mark:]:
        word, _, rest = line.partition(" ")
        got[word] = rest
    pend = re.match(r"code=(-?\d+) timerid=(-?\d+) value=(-?\d+)", got.get("pending", ""))
    tap.ok(pend and int(pend.group(1)) == SI_TIMER and int(pend.group(2)) == a["pend"]["id"]
           and int(pend.group(3)) == 44,
           f"{label}: the signal pending at the dump is delivered, as the timer's",
           f"pending {got.get('pending')} (timer {a['pend']['id']}, value 44, SI_TIMER)")
    tap.ok(got.get("pending-again") == "none", f"{label}: and only once",
           f"pending-again {got.get('pending-again')}")

    ovr = re.match(r"code=(-?\d+) timerid=(-?\d+) value=(-?\d+) ovr=(-?\d+)", got.get("overrun", ""))
    # The periodic 1 ms timer waited blocked for at least a second before
    # the dump; its overruns are the periods missed while the process ran.
    ovr_n = int(ovr.group(4)) if ovr else -1
    if engine:
        # Alive (on its own clock) from its start to the dump, and from
        # the restore to now: about that many milliseconds were missed.
        alive = (t_dump - s.started) + (t_checked - t_restore)
        tap.ok(ovr and int(ovr.group(3)) == 55 and (alive - 1.5) * 1000 <= ovr_n <= alive * 1000 + 300,
               f"{label}: the blocked periodic timer's signal counts the periods missed alive",
               f"overrun {got.get('overrun')}: alive {alive:.2f} s, dead {GAP} s")
        tap.ok(got.get("overrun-again") == "none", f"{label}: one signal for them",
               f"overrun-again {got.get('overrun-again')}")
        tap.ok(got.get("overrun-count") == str(ovr_n), f"{label}: timer_getoverrun agrees",
               f"overrun-count {got.get('overrun-count')}, si_overrun {ovr_n}")
    else:
        tap.note(f"{label}: the blocked periodic timer after CRIU's restore: {got.get('overrun')}, "
                 f"then {got.get('overrun-again')}, timer_getoverrun {got.get('overrun-count')}")
    tap.ok(got.get("thread-called", "0") != "0", f"{label}: a SIGEV_THREAD timer calls its function",
           got.get("thread-called"))
    tap.ok(got.get("tid-signalled", "0") != "0", f"{label}: a SIGEV_THREAD_ID timer signals its thread",
           got.get("tid-signalled"))
    tap.ok(got.get("cpu-fired", "").startswith("1 "), f"{label}: a CPU-clock timer fires",
           got.get("cpu-fired"))
    # 150 ms of the thread's time at every 10 ms: 15, less the ticks'
    # granularity at either end.
    tap.ok(int(got.get("profiler-signalled", "0")) >= 10,
           f"{label}: a profiler's timer signals its thread as its time goes",
           got.get("profiler-signalled"))
    # The process's time goes at least as fast as the profiler's thread's.
    tap.ok(int(got.get("pprofiler-signalled", "0")) >= 10,
           f"{label}: a profiler's timer on the process's CPU clock signals the process",
           got.get("pprofiler-signalled"))
    newid = int(got.get("newid", "-1"))
    if engine:
        tap.ok(newid == s.probe + 1, f"{label}: a new timer's ID follows on from before the dump",
               f"new ID {newid}, the last before the dump {s.probe}")
    else:
        tap.note(f"{label}: a new kernel timer's ID after the restore: {newid} "
                 f"(the last before the dump: {s.probe})")


def many_cycles(ptimers, program, criu_bin, rounds=20):
    """Dumps and restores in a row, ptimers ls reading throughout."""
    label = f"engine, {rounds} dumps in a row"
    with tempfile.TemporaryDirectory(prefix="ptimers-criu-") as work:
        s = Subject(work, True, ptimers, program)
        criu = Criu(criu_bin, work)
        a, _, _ = s.report()
        want = sorted(a[n]["id"] for n in NAMES)
        stop = threading.Event()
        seen = {"ok": 0, "refused": 0, "kernel": 0, "wrong": [], "hung": 0}

        def poll():
            while not stop.is_set():
                try:
                    r = subprocess.run([ptimers, "ls", "--json", str(s.pid)], capture_output=True,
                                       text=True, timeout=5)
                except subprocess.TimeoutExpired:
                    seen["hung"] += 1
                    continue
                if r.returncode == 0:
                    got = json.loads(r.stdout)
                    ids = sorted(t["id"] for t in got["timers"])
                    if got["source"] == "kernel":
                        # Mid-restore: the process is there, its memory
                        # not yet, and ls says so and shows its kernel
                        # timers.
                        seen["kernel"] += 1
                    elif ids == want:
                        seen["ok"] += 1
                    else:
                        seen["wrong"].append(ids)
                elif r.returncode == 1 and r.stderr.strip():
                    seen["refused"] += 1  # between dump and restore: no such process
                else:
                    seen["wrong"].append(f"exit {r.returncode}: {r.stderr.strip()}")

        t = threading.Thread(target=poll)
        t.start()
        failures = []
        ticks = 0
        try:
            for i in range(rounds):
                ok, why = criu.dump(s.pid)
                if not ok:
                    failures.append(f"dump {i + 1}: {why}")
                    break
                reap(s.pid, s)
                ok, why = criu.restore([])
                if not ok:
                    failures.append(f"restore {i + 1}: {why}")
                    break
                b, end, _ = s.report()
                if sorted(b[n]["id"] for n in NAMES) != want:
                    failures.append(f"round {i + 1}: IDs {sorted(b[n]['id'] for n in NAMES)}")
                if end["ticks"] < ticks:
                    failures.append(f"round {i + 1}: ticks went back")
                ticks = end["ticks"]
        finally:
            stop.set()
            t.join()
        tap.ok(not failures, f"{label}: every round restores every ID", "\n".join(failures))
        tap.ok(seen["ok"] > 0 and not seen["wrong"] and not seen["hung"],
               f"{label}: ptimers ls meanwhile: whole listings or a clear refusal, never a hang",
               f"{seen['ok']} whole, {seen['refused']} refused, {seen['hung']} hung, "
               f"wrong: {seen['wrong'][:3]}")
        tap.note(f"{label}: ptimers ls read {seen['ok']} whole listings; "
                 f"{seen['refused']} refusals while the process was gone, {seen['kernel']} "
                 "times not yet on the engine while CRIU restored it")
        if not failures:
            s.send(signal.SIGTERM)
            _, status = os.waitpid(s.pid, 0)
            tap.ok(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
                   f"{label}: the process exits cleanly after them")
        else:
            try:
                os.kill(s.pid, signal.SIGKILL)
                reap(s.pid, s)
            except (ProcessLookupError, ChildProcessError):
                pass


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: criu.py PTIMERS SUBJECT CRIU_BUILD_DIR")
    ptimers, program, build_dir = sys.argv[1:]
    if os.geteuid() != 0:
        print("1..0 # SKIP CRIU needs root to dump and restore")
        return
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([os.path.join(here, "criu", "build.sh"), build_dir], capture_output=True,
                       text=True)
    if r.returncode != 0:
        print(f"1..0 # SKIP no usable CRIU: {r.stdout.strip() or r.stderr.strip()}")
        return
    criu_bin = r.stdout.strip().splitlines()[-1]
    version = subprocess.run([criu_bin, "--version"], capture_output=True, text=True).stdout
    tap.note(f"CRIU: {criu_bin} ({version.split()[1] if version.split()[1:] else '?'})")
    subreaper()
    for engine in (True, False):
        cycle("CRIU's time namespace", engine, ptimers, program, criu_bin, [])
        cycle("no time namespace (--unprivileged)", engine, ptimers, program, criu_bin,
              ["--unprivileged"])
    many_cycles(ptimers, program, criu_bin)
    tap.done()


if __name__ == "__main__":
    main()
