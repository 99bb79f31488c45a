"""The shape every capsa command-line harness shares (conftest.Capsa as
root, rootless_env.RootlessCapsa as a test user): run one command with
the harness's environment, decode its output, check its exit code."""
import json
import subprocess


class CliRunner:
    label = "capsa"   # names the command in a failed check
    cwd = None

    def argv(self, *args):
        raise NotImplementedError

    def run(self, *args, input=None, timeout=120, env=None, check=None, preexec_fn=None):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run(self.argv(*args), input=input, capture_output=True, timeout=timeout, env=e,
                           cwd=self.cwd, preexec_fn=preexec_fn)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check is not None:
            assert p.returncode == check, (
                f"{self.label} {' '.join(map(str, args))}: exit {p.returncode}, expected {check}\n"
                f"stdout: {p.out}\nstderr: {p.err}")
        return p

    def ok(self, *args, **kw):
        """Runs capsa, asserts exit 0, returns stdout as text."""
        return self.run(*args, check=0, **kw).out

    def fail(self, *args, rc=125, match=None, **kw):
        """Runs capsa, asserts the exit code and a one-line error naming the input."""
        p = self.run(*args, check=rc, **kw)
        if match is not None:
            assert match in p.err, f"stderr {p.err!r} does not mention {match!r}"
        return p.err

    def json(self, *args, **kw):
        return json.loads(self.ok(*args, **kw))
