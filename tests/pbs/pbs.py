# A stand-in for the `pbs` module that OpenPBS's MOM gives hooks, following
# the documented objects (PBS Professional Hooks Guide): pbs.event() with
# type, job, progname, argv, env, vnode_list, accept(), reject(); pbs.job
# with id, euser, egroup, Job_Name, Job_Owner, queue, Variable_List,
# Resource_List, in_ms_mom(), delete(), rerun(); pbs.logmsg, pbs.logjobmsg,
# pbs.get_local_nodename, pbs.hook_config_filename, pbs.pbs_conf.
#
# PBS is not packaged for Debian.  tests/pbs/mom.py loads an event
# description into this module and runs a hook the way the MOM does.
import os
import sys

EXECJOB_BEGIN = 1 << 10
EXECJOB_PROLOGUE = 1 << 11
EXECJOB_EPILOGUE = 1 << 12
EXECJOB_PRETERM = 1 << 13
EXECJOB_END = 1 << 14
EXECJOB_LAUNCH = 1 << 16
EXECJOB_ATTACH = 1 << 17

EVENT_NAMES = {
    "execjob_begin": EXECJOB_BEGIN,
    "execjob_prologue": EXECJOB_PROLOGUE,
    "execjob_epilogue": EXECJOB_EPILOGUE,
    "execjob_preterm": EXECJOB_PRETERM,
    "execjob_end": EXECJOB_END,
    "execjob_launch": EXECJOB_LAUNCH,
    "execjob_attach": EXECJOB_ATTACH,
}

# Log levels and event classes as the module exports them.
LOG_DEBUG = 0x0004
LOG_ERROR = 0x0001
LOG_WARNING = 0x0002
EVENT_DEBUG = 0x0080
EVENT_ERROR = 0x0001
EVENT_SYSTEM = 0x0002
EVENT_JOB = 0x0008

hook_config_filename = None
pbs_conf = {"PBS_HOME": "/var/spool/pbs", "PBS_EXEC": "/opt/pbs"}

# What the hook did, for the test driver.
log = []
joblog = []


class BadAttributeValueError(Exception):
    pass


class _Resources(dict):
    """Resource_List: a missing resource reads as None, as in PBS."""

    def __getitem__(self, key):
        return dict.get(self, key)


class _VarList(dict):
    """Variable_List: str() is the qsub -v form "A=1,B=2"."""

    def __str__(self):
        return ",".join("%s=%s" % kv for kv in self.items())


class job(object):
    def __init__(self, d):
        self.id = d["id"]
        self.euser = d["euser"]
        self.egroup = d.get("egroup")
        self.Job_Name = d.get("Job_Name", "STDIN")
        self.Job_Owner = d.get("Job_Owner", "%s@localhost" % self.euser)
        self.queue = d.get("queue", "workq")
        self.Variable_List = _VarList(d.get("Variable_List", {}))
        self.Resource_List = _Resources(d.get("Resource_List", {}))
        self.interactive = d.get("interactive", False)
        self._ms = d.get("in_ms_mom", True)
        self.deleted = False
        self.rerun_requested = False

    def in_ms_mom(self):
        return self._ms

    def delete(self):
        self.deleted = True

    def rerun(self):
        self.rerun_requested = True


class argv(list):
    pass


class pbs_env(dict):
    pass


class _Event(object):
    def __init__(self, d):
        self.type = EVENT_NAMES[d["type"]]
        self.hook_name = d.get("hook_name", "berth")
        self.job = job(d["job"])
        self.vnode_list = {}
        if "progname" in d:
            self.progname = d["progname"]
            self.argv = argv(d.get("argv", [d["progname"]]))
            self.env = pbs_env(d.get("env", {}))
        self.accepted = None
        self.message = ""

    def accept(self, code=0):
        self.accepted = True
        raise SystemExit(code)

    def reject(self, msg="", code=255):
        self.accepted = False
        self.message = str(msg)
        raise SystemExit(code)


_event = None


def _load(desc):
    global _event
    _event = _Event(desc)
    return _event


def event():
    return _event


def logmsg(level, msg):
    log.append((level, str(msg)))
    sys.stderr.write("pbs.logmsg: %s\n" % msg)


def logjobmsg(jobid, msg):
    joblog.append((jobid, str(msg)))
    sys.stderr.write("pbs.logjobmsg: %s: %s\n" % (jobid, msg))


def get_local_nodename():
    return os.uname()[1].split(".")[0]
