# berth hook for OpenPBS / PBS Professional: run jobs in berth containers.
#
# Events (install steps in doc/pbs.md):
#   execjob_begin   on every node of the job: import the job's image into the
#                   user's cache as the job owner (never as root), so the job
#                   starts from a cached squashfs; a failure rejects the job
#                   with the reason instead of letting it start and hang.
#   execjob_launch  rewrite the job's program to
#                   `berth pbs-wrap --image IMAGE -- PROGRAM ARGS...`, which is
#                   `berth run` with the job's mounts, environment (PBS_*
#                   kept) and working directory (see `berth pbs-wrap --help`).
#   execjob_end     stop the job's containers and remove their runtime state
#                   (`berth pbs-wrap --cleanup JOBID`, as the job owner).
#
# A job asks for a container with `qsub -v BERTH_IMAGE=REF[,BERTH_MOUNTS=...]`
# or with the custom resource `qsub -l container_image=REF`.  Jobs that ask for
# neither are accepted untouched.
#
# Configuration (optional, JSON, `qmgr -c "import hook berth
# application/x-config default berth_hook.json"`):
#   {"berth": "/usr/bin/berth",      path of the berth binary
#    "import_timeout": 600,          seconds before an import counts as failed
#                                    (keep it below the hook's alarm)
#    "on_import_failure": "delete"}  "delete": delete the job with the reason;
#                                    "requeue": only reject (PBS requeues it)
import json
import os
import pwd
import subprocess

import pbs

DEFAULTS = {"berth": "/usr/bin/berth", "import_timeout": 600, "on_import_failure": "delete"}

# Job variables handed to berth when it runs for the user outside the job
# (import, cleanup): the user's own berth settings and proxies.
PASS_PREFIXES = ("BERTH_",)
PASS_NAMES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "NO_PROXY", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")


class HookError(Exception):
    pass


def load_config():
    cfg = dict(DEFAULTS)
    path = getattr(pbs, "hook_config_filename", None)
    if path:
        try:
            with open(path) as f:
                cfg.update(json.load(f))
        except (OSError, ValueError) as err:
            raise HookError("berth hook: config '%s': %s" % (path, err))
    try:
        cfg["import_timeout"] = int(cfg["import_timeout"])
    except (TypeError, ValueError):
        raise HookError("berth hook: import_timeout '%s' is not a number" % cfg["import_timeout"])
    if cfg["on_import_failure"] not in ("delete", "requeue"):
        raise HookError("berth hook: on_import_failure must be 'delete' or 'requeue'")
    return cfg


def job_variables(job):
    """The job's -v variables as a plain dict (Variable_List is dict-like)."""
    vl = job.Variable_List
    if vl is None:
        return {}
    try:
        return dict((str(k), str(vl[k])) for k in vl.keys())
    except AttributeError:
        # Its string form, "A=1,B=2", when it is not a mapping.
        out = {}
        for item in str(vl).split(","):
            if "=" in item:
                k, v = item.split("=", 1)
                out[k] = v
        return out


def job_image(job, variables):
    """BERTH_IMAGE from qsub -v, else the custom resource container_image."""
    image = variables.get("BERTH_IMAGE")
    if not image:
        try:
            res = job.Resource_List["container_image"]
        except (KeyError, TypeError):
            res = None
        image = str(res) if res is not None else None
    if image is not None:
        image = image.strip().strip("'\"")
    return image or None


def user_env(pw, variables):
    env = {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
           "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    for k, v in variables.items():
        if k.startswith(PASS_PREFIXES) or k in PASS_NAMES:
            env[k] = v
    return env


def run_as_owner(job, variables, argv, timeout):
    """Run argv as the job's execution user, never as root."""
    try:
        pw = pwd.getpwnam(str(job.euser))
    except KeyError:
        raise HookError("berth: job owner '%s' is not a user on this node" % job.euser)
    if pw.pw_uid == 0:
        raise HookError("berth: refusing to run containers for root jobs")
    cmd = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
           "--init-groups", "--"] + argv
    cwd = pw.pw_dir if os.path.isdir(pw.pw_dir) else "/"
    try:
        p = subprocess.run(cmd, env=user_env(pw, variables), cwd=cwd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, universal_newlines=True)
    except subprocess.TimeoutExpired:
        raise HookError("timed out after %d s" % timeout)
    except OSError as err:
        raise HookError("cannot run %s: %s" % (argv[0], err))
    return p


def last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip() if lines else ""


def begin(e, cfg, job, variables, image):
    pbs.logmsg(pbs.LOG_DEBUG, "berth: %s: importing %s as %s" % (job.id, image, job.euser))
    try:
        p = run_as_owner(job, variables, [cfg["berth"], "import", "--quiet", image],
                         cfg["import_timeout"])
        if p.returncode != 0:
            raise HookError(last_line(p.stderr) or "berth import exited with %d" % p.returncode)
    except HookError as err:
        msg = "berth: cannot import image '%s' on %s: %s" % (image, local_node(), err)
        pbs.logjobmsg(job.id, msg)
        pbs.logmsg(pbs.LOG_ERROR, "%s: %s" % (job.id, msg))
        if cfg["on_import_failure"] == "delete":
            try:
                job.delete()
            except Exception as derr:
                pbs.logmsg(pbs.LOG_ERROR, "berth: %s: cannot delete job: %s" % (job.id, derr))
        e.reject(msg)
    pbs.logjobmsg(job.id, "berth: image %s ready on %s" % (image, local_node()))


def local_node():
    try:
        return pbs.get_local_nodename()
    except Exception:
        return os.uname()[1]


def launch(e, cfg, job, image):
    prog = str(e.progname)
    # Already berth (a task started as `berth pbs-wrap ...`): leave it alone.
    if os.path.basename(prog) == "berth" or prog == cfg["berth"]:
        return
    args = [str(a) for a in e.argv] if e.argv is not None else [prog]
    e.env["BERTH_IMAGE"] = image
    e.progname = cfg["berth"]
    e.argv = ["berth", "pbs-wrap", "--image", image, "--", prog] + args[1:]
    pbs.logmsg(pbs.LOG_DEBUG, "berth: %s: launching %s" % (job.id, " ".join(e.argv)))


def end(cfg, job, variables):
    try:
        p = run_as_owner(job, variables, [cfg["berth"], "pbs-wrap", "--cleanup", str(job.id)], 60)
        if p.returncode != 0:
            pbs.logmsg(pbs.LOG_ERROR, "berth: %s: cleanup: %s" % (job.id, last_line(p.stderr)))
    except HookError as err:
        pbs.logmsg(pbs.LOG_ERROR, "berth: %s: cleanup: %s" % (job.id, err))


def main():
    e = pbs.event()
    job = e.job
    try:
        cfg = load_config()
        variables = job_variables(job)
        if e.type == pbs.EXECJOB_LAUNCH:
            # The launch event carries the job's environment itself.
            for k in e.env.keys():
                variables.setdefault(str(k), str(e.env[k]))
        image = job_image(job, variables)
        if image is None:
            e.accept()
        if e.type == pbs.EXECJOB_BEGIN:
            begin(e, cfg, job, variables, image)
        elif e.type == pbs.EXECJOB_LAUNCH:
            launch(e, cfg, job, image)
        elif e.type == pbs.EXECJOB_END:
            end(cfg, job, variables)
    except HookError as err:
        pbs.logmsg(pbs.LOG_ERROR, str(err))
        e.reject(str(err))
    e.accept()


# accept() and reject() end the hook by raising SystemExit, which is not an
# Exception: it passes through the handlers above on purpose.
main()
