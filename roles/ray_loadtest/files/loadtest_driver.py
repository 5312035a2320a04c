#!/usr/bin/env python3
"""Drive a Locust load test against a Ray Serve app and record its autoscaling.

Runs on the Ray head host, with the python of a venv that has locust
installed (locust itself is started as a subprocess). Standard library only.

  run   start locust, sample the app's replicas from the dashboard while it
        runs and until the app is back at min_replicas, write the records
  poll  keep the run alive (heartbeat) and print its progress as one JSON line
  stop  stop a run (the driver, then any locust it left)
  sweep before a new run: report live runs, stop and remove stale ones

Files in --out DIR:
  driver.pid       the driver's pid (written first)
  locust.pgid      locust's process group (locust runs in its own session)
  heartbeat        touched by `poll`; a run stops when it gets too old
  driver.log       what the driver did, failed samples included
  locust.log       locust's stdout and stderr
  timeline.csv     one row per successful sample (TIMELINE_COLUMNS)
  progress.json    rewritten every interval (see Driver.progress)
  events.json      written once at the end (see events_record)
  locust_*.csv, report.html   locust's own output (--csv DIR/locust)
  llm_requests.csv the locustfile's row per streamed answer (TTFT, ITL, tokens)

Exit codes of `run`: 0 the run completed (whether or not the app scaled:
judging is the caller's job), 1 aborted (dead-man switch, signal, error),
3 locust failed to start. `poll`, `stop` and `sweep` exit 0.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

# The CSV columns, here once: make_report.py imports them, and the
# locustfile (which runs alone under Locust) keeps a copy that a unit test
# holds equal to LLM_COLUMNS.
TIMELINE_COLUMNS = ["time", "elapsed_s", "phase", "app_status", "deployment_status",
                    "target_replicas", "running_replicas", "other_replicas"]
LLM_COLUMNS = ["time", "latency_ms", "ttft_ms", "itl_ms", "output_tokens"]
USER_AGENT = "ray-loadtest-driver/1"
EXIT_OK, EXIT_ABORTED, EXIT_NO_LOCUST = 0, 1, 3
LOCUST_TERM_GRACE_S = 10.0
STOP_DRIVER_WAIT_S = 15.0
HISTORY_TAIL_BYTES = 65536
# A pid or process group recorded in a file is ours only if the process
# started no later than the file was written (plus clock-tick slack): this
# keeps a recycled pid from being signalled.
START_SLACK_S = 2.0


# ---------------------------------------------------------------- pure logic

def sample_from_status(doc, app, deployment):
    """One timeline sample (without time/elapsed/phase) from GET /api/serve/applications/.

    A missing application or deployment is a valid sample: status NOT_FOUND,
    target unknown (None), no replicas.
    """
    apps = (doc or {}).get("applications") or {}
    a = apps.get(app)
    if not isinstance(a, dict):
        return {"app_status": "NOT_FOUND", "deployment_status": "NOT_FOUND",
                "target_replicas": None, "running_replicas": 0, "other_replicas": 0}
    d = (a.get("deployments") or {}).get(deployment)
    if not isinstance(d, dict):
        return {"app_status": a.get("status") or "", "deployment_status": "NOT_FOUND",
                "target_replicas": None, "running_replicas": 0, "other_replicas": 0}
    replicas = d.get("replicas") or []
    running = sum(1 for r in replicas if (r or {}).get("state") == "RUNNING")
    target = d.get("target_num_replicas")
    return {"app_status": a.get("status") or "",
            "deployment_status": d.get("status") or "",
            "target_replicas": int(target) if isinstance(target, (int, float)) else None,
            "running_replicas": running,
            "other_replicas": len(replicas) - running}


def timeline_row_to_csv(row):
    """A sample dict as the list of CSV cells in TIMELINE_COLUMNS order."""
    target = row.get("target_replicas")
    return [f"{row['time']:.3f}", f"{row['elapsed_s']:.3f}", row["phase"],
            row.get("app_status", ""), row.get("deployment_status", ""),
            "" if target is None else str(target),
            str(row.get("running_replicas", 0)), str(row.get("other_replicas", 0))]


def timeline_row_from_csv(cells):
    """A dict from csv.DictReader over timeline.csv back into typed values."""
    target = (cells.get("target_replicas") or "").strip()
    return {"time": float(cells["time"]), "elapsed_s": float(cells["elapsed_s"]),
            "phase": cells["phase"], "app_status": cells["app_status"],
            "deployment_status": cells["deployment_status"],
            "target_replicas": int(target) if target else None,
            "running_replicas": int(cells["running_replicas"]),
            "other_replicas": int(cells["other_replicas"])}


def at_min(row, min_replicas):
    """The app is fully back at min: target == running == min, nothing starting or stopping."""
    return (row.get("target_replicas") == min_replicas
            and row.get("running_replicas") == min_replicas
            and row.get("other_replicas", 0) == 0)


def detect_events(rows, min_replicas, max_replicas, load_start, load_end):
    """The autoscaling events in a timeline (rows in time order, epoch times).

    first_target_max   first sample at/after load_start with target >= max
    first_running_max  first sample at/after load_start with running >= max
    back_at_min        first sample at/after load_end that is at_min();
                       None while load_end is None (load still running)
    """
    ev = {"first_target_max": None, "first_running_max": None, "back_at_min": None}
    if load_start is None:
        return ev
    for r in rows:
        t = r["time"]
        if t < load_start:
            continue
        target = r.get("target_replicas")
        if ev["first_target_max"] is None and target is not None and target >= max_replicas:
            ev["first_target_max"] = t
        if ev["first_running_max"] is None and r.get("running_replicas", 0) >= max_replicas:
            ev["first_running_max"] = t
        if (ev["back_at_min"] is None and load_end is not None and t >= load_end
                and at_min(r, min_replicas)):
            ev["back_at_min"] = t
    return ev


def events_record(rows, *, min_replicas, max_replicas, load_start, load_end,
                  aborted, reason, locust_rc, sample_errors):
    """The content of events.json.

    Times are epoch floats or None. The *_s keys are the same events as
    seconds after load_start (first_*) or after load_end (back_at_min).
    """
    ev = detect_events(rows, min_replicas, max_replicas, load_start, load_end)
    first = next((r for r in rows if load_start is not None and r["time"] >= load_start), None)

    def since(t, ref):
        return None if t is None or ref is None else round(t - ref, 3)

    return {
        "load_start": load_start, "load_end": load_end,
        "min_replicas": min_replicas, "max_replicas": max_replicas,
        "first_target_max": ev["first_target_max"],
        "first_running_max": ev["first_running_max"],
        "back_at_min": ev["back_at_min"],
        "first_target_max_s": since(ev["first_target_max"], load_start),
        "first_running_max_s": since(ev["first_running_max"], load_start),
        "back_at_min_s": since(ev["back_at_min"], load_end),
        # The first sample (taken as locust starts, before its users send
        # anything): False means the app was not at min when the load
        # began, so the first_* times do not measure a scale-up.
        "at_min_at_start": None if first is None else at_min(first, min_replicas),
        "aborted": bool(aborted), "reason": reason or "",
        "locust_rc": locust_rc,
        "sample_errors": sample_errors, "samples": len(rows),
    }


def parse_history(header_line, lines):
    """The last complete "Aggregated" row of locust_stats_history.csv.

    header_line is the file's first line, lines any tail of the file (the
    first and last may be cut). Returns {"time", "users", "rps",
    "failures_per_s", "requests", "failures"} or None.
    """
    header = next(csv.reader([header_line]), None)
    if not header:
        return None
    need = ("Timestamp", "User Count", "Name", "Requests/s", "Failures/s",
            "Total Request Count", "Total Failure Count")
    if any(k not in header for k in need):
        return None
    idx = {k: header.index(k) for k in need}
    for cells in reversed(list(csv.reader(lines))):
        if len(cells) != len(header) or cells[idx["Name"]] != "Aggregated":
            continue
        try:
            return {"time": float(cells[idx["Timestamp"]]),
                    "users": int(cells[idx["User Count"]]),
                    "rps": float(cells[idx["Requests/s"]]),
                    "failures_per_s": float(cells[idx["Failures/s"]]),
                    "requests": int(cells[idx["Total Request Count"]]),
                    "failures": int(cells[idx["Total Failure Count"]])}
        except ValueError:
            continue
    return None


def read_history(path, tail_bytes=HISTORY_TAIL_BYTES):
    """parse_history() on a file that locust may be writing right now."""
    try:
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8", "replace")
            size = os.fstat(f.fileno()).st_size
            start = max(f.tell(), size - tail_bytes)
            f.seek(start)
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = tail.splitlines()
    if start > len(header.encode()) and lines:
        lines = lines[1:]  # began mid-line
    if tail and not tail.endswith("\n") and lines:
        lines = lines[:-1]  # being written
    return parse_history(header, lines)


def locust_command(locust, locustfile, *, users, spawn_rate, run_time, host, out):
    return [locust, "-f", locustfile, "--headless", "-u", str(users), "-r", f"{spawn_rate:g}",
            "--run-time", f"{int(run_time)}s", "--host", host,
            "--csv", os.path.join(out, "locust"), "--csv-full-history",
            "--html", os.path.join(out, "report.html"), "--only-summary",
            "--stop-timeout", "5"]


def locust_env(base, *, model, prompts, max_tokens, llm_csv=None, wait_s=0.0):
    env = dict(base)
    env.update({"LOADTEST_MODEL": model, "LOADTEST_PROMPTS": json.dumps(prompts),
                "LOADTEST_MAX_TOKENS": str(int(max_tokens)), "LOADTEST_WAIT_S": f"{float(wait_s):g}",
                "PYTHONUNBUFFERED": "1"})
    if llm_csv:
        env["LOADTEST_LLM_CSV"] = llm_csv
    return env


def parse_prompts(text):
    prompts = json.loads(text)
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("--prompts must be a non-empty JSON list of strings")
    return prompts


# ------------------------------------------------------------- process helpers

def _boot_time():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def proc_info(pid):
    """(state, pgrp, start epoch) of a pid from /proc, or None if there is no such process."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            stat = f.read()
    except (OSError, ValueError):
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    state, pgrp, start_ticks = rest[0], int(rest[2]), int(rest[19])
    try:
        start = _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        start = None
    return state, pgrp, start


def is_alive(pid, not_after=None):
    """pid runs (not a zombie) and, given not_after, started no later than that (epoch)."""
    if not pid:
        return False
    if not os.path.isdir("/proc/self"):  # no procfs: best effort
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    info = proc_info(pid)
    if info is None or info[0] in ("Z", "X"):
        return False
    start = info[2]
    return not_after is None or start is None or start <= not_after + START_SLACK_S


def group_members(pgid, not_after=None):
    """Live pids in process group pgid; empty unless one of them started no later than not_after."""
    if not pgid or not os.path.isdir("/proc/self"):
        return []
    members, ours = [], not_after is None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        info = proc_info(name)
        if info is None or info[0] in ("Z", "X") or info[1] != pgid:
            continue
        members.append(int(name))
        if info[2] is None or not_after is None or info[2] <= not_after + START_SLACK_S:
            ours = True
    return members if ours else []


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path, doc):
    write_atomic(path, json.dumps(doc, sort_keys=True) + "\n")


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def touch(path):
    with open(path, "a"):
        pass
    os.utime(path, None)


def signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_group(pgid, proc=None, grace=LOCUST_TERM_GRACE_S, not_after=None, log=None):
    """SIGTERM the process group, SIGKILL it after `grace` s. True if anything was running."""
    def running():
        if proc is not None and proc.poll() is None:
            return True
        return bool(group_members(pgid, not_after))

    if not pgid or not running():
        return False
    if log:
        log(f"stopping locust: SIGTERM to process group {pgid}")
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and running():
        time.sleep(0.1)
    if running():
        if log:
            log(f"locust still running after {grace:g} s: SIGKILL to process group {pgid}")
        signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and running():
            time.sleep(0.1)
    if proc is not None:
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    return True


# ----------------------------------------------------------------------- run

class Aborted(Exception):
    pass


class Driver:
    def __init__(self, args):
        self.a = args
        self.out = args.out
        self.path = lambda name: os.path.join(self.out, name)
        self.lock = threading.Lock()
        self.rows = []
        self.sample_errors = 0
        self.last = None
        self.load_start = None
        self.load_end = None
        self.locust_rc = None
        self.proc = None
        self.pgid = None
        self.state = "starting"
        self.started_at = time.time()
        self.sampler_stop = threading.Event()
        self.sampler = None
        self.stopping = False
        self.token = None
        self._logf = None
        self._timeline = None
        self._timeline_w = None

    # -- logging
    def log(self, msg):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        line = f"{stamp}Z {msg}\n"
        with self.lock:
            if self._logf:
                self._logf.write(line)
                self._logf.flush()

    # -- sampling
    def fetch(self):
        url = self.a.dashboard.rstrip("/") + "/api/serve/applications/"
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, headers=headers)
        timeout = min(10.0, max(2.0, 3 * self.a.interval))
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode())

    def sample_once(self):
        t = time.time()
        try:
            doc = self.fetch()
            row = sample_from_status(doc, self.a.app, self.a.deployment)
        except Exception as exc:  # noqa: BLE001 - any failed sample is counted, never fatal
            with self.lock:
                self.sample_errors += 1
                n = self.sample_errors
            detail = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                      else repr(exc))
            self.log(f"sample failed ({n} so far): {detail}")
            return
        with self.lock:
            load_end = self.load_end
            row["time"] = t
            row["elapsed_s"] = t - self.load_start
            row["phase"] = "after" if load_end is not None and t >= load_end else "load"
            self.rows.append(row)
            self.last = row
            self._timeline_w.writerow(timeline_row_to_csv(row))
            self._timeline.flush()

    def sampler_loop(self):
        tick = time.monotonic()
        while not self.sampler_stop.is_set():
            self.sample_once()
            tick += self.a.interval
            now = time.monotonic()
            if tick < now:  # a slow GET: skip the missed ticks
                tick = now
            self.sampler_stop.wait(tick - now)

    # -- progress
    def progress(self):
        hist = read_history(self.path("locust_stats_history.csv")) or {}
        with self.lock:
            last = self.last or {}
            elapsed = 0.0 if self.load_start is None else time.time() - self.load_start
            return {"state": self.state, "elapsed_s": round(elapsed, 1),
                    "users": hist.get("users"), "rps": hist.get("rps"),
                    "failures": hist.get("failures"), "requests": hist.get("requests"),
                    "target_replicas": last.get("target_replicas"),
                    "running_replicas": last.get("running_replicas"),
                    "samples": len(self.rows), "sample_errors": self.sample_errors,
                    "time": time.time()}

    def write_progress(self):
        write_json(self.path("progress.json"), self.progress())

    def check_heartbeat(self):
        limit = self.a.heartbeat_timeout
        if limit <= 0:
            return
        beat = mtime(self.path("heartbeat")) or self.started_at
        age = time.time() - beat
        if age > limit:
            self.log(f"heartbeat is {age:.1f} s old (limit {limit:g} s)")
            raise Aborted("the playbook stopped polling")

    def tick(self, until):
        """Wait until `until` (monotonic) or less; heartbeat and progress every interval."""
        self.check_heartbeat()
        if time.monotonic() >= self._next_progress:
            self.write_progress()
            self._next_progress = time.monotonic() + self.a.interval
        time.sleep(max(0.0, min(0.2, until - time.monotonic())))

    # -- the run
    def on_signal(self, signum, frame):
        if self.stopping:
            return
        self.stopping = True
        raise Aborted(f"the driver got {signal.Signals(signum).name}")

    def start_locust(self):
        cmd = locust_command(self.a.locust, self.a.locustfile, users=self.a.users,
                             spawn_rate=self.a.spawn_rate, run_time=self.a.run_time,
                             host=self.a.host.rstrip("/"), out=self.out)
        env = locust_env(os.environ, model=self.a.model, prompts=self.prompts,
                         max_tokens=self.a.max_tokens, llm_csv=self.path("llm_requests.csv"),
                         wait_s=self.a.wait_s)
        self.log("starting: " + " ".join(cmd))
        logf = open(self.path("locust.log"), "w")
        try:
            start = time.time()
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.out, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        except OSError as exc:
            raise LocustFailed(f"cannot start locust: {exc}") from exc
        finally:
            logf.close()
        with self.lock:
            self.load_start = start
        self.pgid = self.proc.pid  # session leader == group leader
        write_atomic(self.path("locust.pgid"), f"{self.pgid}\n")
        self.log(f"locust pid/pgid {self.pgid}")

    def scaled_up_long_enough(self):
        """--end-after-max: max_replicas have been RUNNING for that many seconds of the load."""
        if self.a.end_after_max < 0:
            return False
        with self.lock:
            rows = list(self.rows)
        first = detect_events(rows, self.a.min_replicas, self.a.max_replicas,
                              self.load_start, None)["first_running_max"]
        return first is not None and time.time() - first >= self.a.end_after_max

    def locust_log_tail(self, n=400):
        try:
            with open(self.path("locust.log"), errors="replace") as f:
                return f.read()[-n:].strip()
        except OSError:
            return ""

    def run(self):
        self.prompts = parse_prompts(self.a.prompts)
        if self.a.token_file:
            with open(self.a.token_file) as f:
                self.token = f.read().strip()
        self._next_progress = 0.0
        self.write_progress()

        self.start_locust()
        with self.lock:
            self.state = "load"
        self.sampler = threading.Thread(target=self.sampler_loop, name="sampler", daemon=True)
        self.sampler.start()

        ending = False
        while True:
            rc = self.proc.poll()
            if rc is not None:
                break
            if not ending and self.scaled_up_long_enough():
                # SIGINT, as Ctrl-C: Locust writes its stats and its HTML
                # report, as at the end of its run time (on SIGTERM it skips the report).
                ending = True
                self.log(f"{self.a.max_replicas} replicas RUNNING for {self.a.end_after_max:g} s: ending the load")
                signal_group(self.pgid, signal.SIGINT)
            self.tick(time.monotonic() + 0.2)
        with self.lock:
            self.load_end = time.time()
            self.locust_rc = rc
            self.state = "after"
        self.log(f"locust exited with rc {rc} after {self.load_end - self.load_start:.1f} s")
        if not os.path.exists(self.path("locust_stats.csv")):
            raise LocustFailed(f"locust exited with rc {rc} before it started the load: "
                               f"{self.locust_log_tail()}")

        deadline = time.monotonic() + self.a.settle_timeout
        while time.monotonic() < deadline:
            with self.lock:
                rows = list(self.rows)
            if detect_events(rows, self.a.min_replicas, self.a.max_replicas,
                             self.load_start, self.load_end)["back_at_min"] is not None:
                self.log("back at min_replicas")
                break
            self.tick(deadline)
        else:
            self.log(f"not back at min_replicas {self.a.settle_timeout:g} s after the load ended")

    def finish(self, aborted, reason):
        self.sampler_stop.set()
        if self.sampler is not None:
            self.sampler.join(timeout=15)
        with self.lock:
            rows = list(self.rows)
            self.state = "aborted" if aborted else "done"
            errors = self.sample_errors
        rec = events_record(rows, min_replicas=self.a.min_replicas,
                            max_replicas=self.a.max_replicas, load_start=self.load_start,
                            load_end=self.load_end, aborted=aborted, reason=reason,
                            locust_rc=self.locust_rc, sample_errors=errors)
        self.write_progress()
        write_json(self.path("events.json"), rec)
        self.log(f"events: {json.dumps(rec, sort_keys=True)}")

    def main(self):
        out = self.out
        os.makedirs(out, exist_ok=True)
        # The pid first: `poll` must never see a finished run in a reused
        # directory while this one starts.
        write_atomic(self.path("driver.pid"), f"{os.getpid()}\n")
        for stale in ("events.json", "progress.json", "locust.pgid"):
            try:
                os.remove(self.path(stale))
            except FileNotFoundError:
                pass
        touch(self.path("heartbeat"))
        self._logf = open(self.path("driver.log"), "a")
        self._timeline = open(self.path("timeline.csv"), "w", newline="")
        self._timeline_w = csv.writer(self._timeline)
        self._timeline_w.writerow(TIMELINE_COLUMNS)
        self._timeline.flush()
        self.log(f"driver {os.getpid()} starting: {self.a.host} model {self.a.model}, "
                 f"{self.a.users} users, {self.a.run_time} s")

        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        code, aborted, reason = EXIT_OK, False, ""
        try:
            self.run()
        except LocustFailed as exc:
            code, aborted, reason = EXIT_NO_LOCUST, True, str(exc)
        except Aborted as exc:
            code, aborted, reason = EXIT_ABORTED, True, str(exc)
        except BaseException as exc:  # noqa: BLE001 - never leave locust behind
            code, aborted, reason = EXIT_ABORTED, True, f"driver error: {exc!r}"
            self.log(traceback.format_exc())
        finally:
            self.stopping = True
            if self.pgid and stop_group(self.pgid, self.proc, log=self.log):
                with self.lock:
                    if self.load_end is None:
                        self.load_end = time.time()
                        self.locust_rc = self.proc.poll()
        if aborted:
            self.log(f"aborted: {reason}")
        self.finish(aborted, reason)
        self._timeline.close()
        self._logf.close()
        self._logf = None
        return code


class LocustFailed(Exception):
    pass


# ------------------------------------------------------------- poll and stop

def cmd_poll(args):
    out = args.out
    os.makedirs(out, exist_ok=True)
    touch(os.path.join(out, "heartbeat"))
    pid_path = os.path.join(out, "driver.pid")
    pid = read_int(pid_path)
    alive = is_alive(pid, mtime(pid_path)) if pid else False
    has_events = os.path.exists(os.path.join(out, "events.json"))
    doc = read_json(os.path.join(out, "progress.json")) or {}
    if pid is None:
        doc.setdefault("state", "not_started")
    doc["driver_alive"] = alive
    doc["events"] = has_events
    # Finished: the driver is gone. `events` false then means it died
    # without writing its record (e.g. SIGKILL).
    doc["done"] = pid is not None and not alive
    if doc["done"] and not has_events:
        doc["state"] = "lost"
    print(json.dumps(doc, sort_keys=True))
    return 0


def stop_run(out, timeout=STOP_DRIVER_WAIT_S):
    """Stop the run in `out`: SIGTERM the driver (SIGKILL after `timeout` s),
    then SIGKILL any locust it left. True if anything was running."""
    pid_path = os.path.join(out, "driver.pid")
    pgid_path = os.path.join(out, "locust.pgid")
    pid, pid_at = read_int(pid_path), mtime(pid_path)
    stopped = False
    if pid and is_alive(pid, pid_at):
        stopped = True
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and is_alive(pid, pid_at):
            time.sleep(0.1)
        if is_alive(pid, pid_at):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    pgid = read_int(pgid_path)
    if pgid and group_members(pgid, mtime(pgid_path)):
        stopped = True
        signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and group_members(pgid, mtime(pgid_path)):
            time.sleep(0.1)
    return stopped


def cmd_stop(args):
    print(json.dumps({"stopped": stop_run(args.out, args.timeout)}))
    return 0


def run_is_live(out, heartbeat_timeout, now=None):
    """(live, heartbeat age): the driver runs and was polled within heartbeat_timeout s."""
    pid_path = os.path.join(out, "driver.pid")
    pid = read_int(pid_path)
    alive = bool(pid) and is_alive(pid, mtime(pid_path))
    beat = mtime(os.path.join(out, "heartbeat")) or mtime(pid_path)
    age = None if beat is None else max(0.0, (now or time.time()) - beat)
    return alive and age is not None and age <= heartbeat_timeout, age


def cmd_sweep(args):
    """Find the runs under --runs: a live one (its driver runs and its play
    still polls) makes the host busy; the others were left by interrupted or
    finished plays and are stopped and removed (unless --dry-run)."""
    doc = {"busy": [], "stopped": [], "removed": []}
    try:
        names = sorted(os.listdir(args.runs))
    except FileNotFoundError:
        names = []
    runs = [n for n in names if os.path.isdir(os.path.join(args.runs, n))]
    for name in runs:
        live, age = run_is_live(os.path.join(args.runs, name), args.heartbeat_timeout)
        if live:
            doc["busy"].append({"run": name, "dir": os.path.join(args.runs, name),
                                "heartbeat_age_s": round(age, 1)})
    if doc["busy"] or args.dry_run:
        doc["stale"] = [n for n in runs if n not in {b["run"] for b in doc["busy"]}]
        print(json.dumps(doc, sort_keys=True))
        return 0
    for name in runs:
        out = os.path.join(args.runs, name)
        if stop_run(out):
            doc["stopped"].append(name)
        shutil.rmtree(out, ignore_errors=True)
        doc["removed"].append(name)
    print(json.dumps(doc, sort_keys=True))
    return 0


# ----------------------------------------------------------------------- CLI

def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run a load test and record the autoscaling")
    r.add_argument("--out", required=True, help="directory for all records")
    r.add_argument("--host", required=True, help="app base URL incl. route prefix")
    r.add_argument("--model", required=True)
    r.add_argument("--users", type=int, required=True)
    r.add_argument("--spawn-rate", type=float, required=True)
    r.add_argument("--run-time", type=int, required=True, help="seconds (the longest, with --end-after-max)")
    r.add_argument("--end-after-max", type=float, default=-1,
                   help="end the load this many seconds after max replicas are RUNNING; <0: run the full run time")
    r.add_argument("--prompts", required=True, help="JSON list of prompts")
    r.add_argument("--max-tokens", type=int, required=True)
    r.add_argument("--wait-s", type=float, default=0.0, help="think time of each user between requests")
    r.add_argument("--dashboard", required=True, help="Ray dashboard base URL")
    r.add_argument("--token-file", default="", help="Ray auth token file ('' for none)")
    r.add_argument("--app", required=True, help="Serve application name")
    r.add_argument("--deployment", required=True, help="Serve deployment name")
    r.add_argument("--min-replicas", type=int, required=True)
    r.add_argument("--max-replicas", type=int, required=True)
    r.add_argument("--settle-timeout", type=float, required=True, help="seconds")
    r.add_argument("--heartbeat-timeout", type=float, required=True,
                   help="seconds; 0 disables the dead-man switch")
    r.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    r.add_argument("--locust", required=True, help="path to the locust executable")
    r.add_argument("--locustfile", required=True)

    q = sub.add_parser("poll", help="touch the heartbeat and print progress")
    q.add_argument("--out", required=True)

    s = sub.add_parser("stop", help="stop the driver and any locust it left")
    s.add_argument("--out", required=True)
    s.add_argument("--timeout", type=float, default=STOP_DRIVER_WAIT_S,
                   help="seconds to wait for the driver after SIGTERM")

    w = sub.add_parser("sweep", help="report live runs; stop and remove stale ones")
    w.add_argument("--runs", required=True, help="the directory holding one directory per run")
    w.add_argument("--heartbeat-timeout", type=float, required=True,
                   help="seconds; a run polled more recently than this is live")
    w.add_argument("--dry-run", action="store_true", help="report only")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.cmd == "poll":
        return cmd_poll(args)
    if args.cmd == "stop":
        return cmd_stop(args)
    if args.cmd == "sweep":
        return cmd_sweep(args)
    if args.interval <= 0:
        build_parser().error("--interval must be > 0")
    # locust runs with its cwd in --out: relative paths must not change meaning.
    args.out = os.path.abspath(args.out)
    args.locustfile = os.path.abspath(args.locustfile)
    if os.sep in args.locust:
        args.locust = os.path.abspath(args.locust)
    if args.token_file:
        args.token_file = os.path.abspath(args.token_file)
    return Driver(args).main()


if __name__ == "__main__":
    sys.exit(main())
