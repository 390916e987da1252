#!/usr/bin/python3
# Play the MOM for a hook, with the stand-in `pbs` module beside this file.
#
#   mom.py HOOK EVENT.json [--config CONF.json] [--result OUT.json] [--exec]
#
# EVENT.json: {"type": "execjob_begin"|"execjob_launch"|"execjob_end",
#              "job": {"id", "euser", "Variable_List": {...}, "Resource_List": {...}},
#              "progname", "argv", "env"}   (the last three for execjob_launch)
# Runs the hook as root like the MOM (its top-level code, with `pbs`
# importable), writes {"accepted", "message", "progname", "argv", "env",
# "deleted", "joblog"} to OUT.json, and with --exec then starts the job's
# program as the MOM would after an accepted launch event: as the job owner
# (uid, gid, supplementary groups), in the owner's home directory, with the
# event's environment, stdin/stdout/stderr inherited.  The exit status is
# the program's (or 3 when the hook rejected the event).
import argparse
import json
import os
import pwd
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbs  # noqa: E402  (the stand-in)


def run_hook(path, desc, config):
    pbs.hook_config_filename = config
    ev = pbs._load(desc)
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    try:
        exec(code, {"__name__": "__main__", "__file__": path})
        if ev.accepted is None:
            ev.accepted = True  # a hook that ends without a verdict accepts
    except SystemExit:
        pass
    except Exception as err:  # the MOM rejects an event whose hook raised
        ev.accepted = False
        ev.message = "hook raised %s: %s" % (type(err).__name__, err)
    return ev


def result(ev):
    out = {"accepted": ev.accepted, "message": ev.message, "deleted": ev.job.deleted,
           "joblog": [m for _, m in pbs.joblog]}
    if hasattr(ev, "progname"):
        out.update(progname=ev.progname, argv=list(ev.argv), env=dict(ev.env))
    return out


def exec_job(ev):
    pw = pwd.getpwnam(ev.job.euser)
    env = dict((str(k), str(v)) for k, v in ev.env.items())
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.chdir(env.get("PBS_JOBDIR") or pw.pw_dir)
    os.execve(ev.progname, [str(a) for a in ev.argv], env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hook")
    ap.add_argument("event")
    ap.add_argument("--config")
    ap.add_argument("--result")
    ap.add_argument("--exec", action="store_true")
    a = ap.parse_args()
    with open(a.event) as f:
        desc = json.load(f)
    ev = run_hook(a.hook, desc, a.config)
    if a.result:
        with open(a.result, "w") as f:
            json.dump(result(ev), f, indent=1)
    if not ev.accepted:
        sys.stderr.write("mom: hook rejected the event: %s\n" % ev.message)
        return 3
    if a.exec:
        sys.stdout.flush()
        exec_job(ev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
