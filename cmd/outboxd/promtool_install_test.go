package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installScript is what `make promtool` runs.
var installScript = "../../deploy/prometheus/install-promtool.sh"

// fakeSystem is a PATH of stand-ins for the commands install-promtool.sh
// runs: root's id, an apt-get that does what apt says (fail the update,
// get killed, or install), and service managers that log their calls.
func fakeSystem(t *testing.T, apt string) (path, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls.log")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("id", "echo 0")
	write("apt-get", apt)
	for _, name := range []string{"systemctl", "service", "update-rc.d"} {
		write(name, `echo "`+name+` $*" >>`+calls)
	}
	for _, name := range []string{"chmod", "rm", "head", "mv"} {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, calls
}

func runInstall(t *testing.T, path, policy string) error {
	t.Helper()
	cmd := exec.Command("/bin/sh", installScript)
	cmd.Env = []string{"PATH=" + path, "POLICY_RC_D=" + policy}
	out, err := cmd.CombinedOutput()
	t.Logf("install-promtool.sh: %v\n%s", err, out)
	return err
}

// The policy-rc.d the script writes is gone however the script ends: a
// failed apt-get update, or a signal (here TERM, sent by apt-get to the
// script); one that was there before stays as it was.
func TestInstallPromtoolPolicyRemoved(t *testing.T) {
	t.Parallel()
	for name, apt := range map[string]string{
		"update fails": `[ "$1" = update ] && exit 100; exit 0`,
		"killed":       `kill -TERM $PPID; exit 0`,
	} {
		t.Run(name, func(t *testing.T) {
			path, _ := fakeSystem(t, apt)
			policy := filepath.Join(t.TempDir(), "policy-rc.d")
			if err := runInstall(t, path, policy); err == nil {
				t.Fatal("the script succeeded; want a failure")
			}
			if _, err := os.Stat(policy); !os.IsNotExist(err) {
				t.Fatalf("the policy-rc.d it wrote is left behind (%v)", err)
			}

			const theirs = "#!/bin/sh\n# the admin's\nexit 101\n"
			if err := os.WriteFile(policy, []byte(theirs), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := runInstall(t, path, policy); err == nil {
				t.Fatal("the script succeeded; want a failure")
			}
			if got, err := os.ReadFile(policy); err != nil || string(got) != theirs {
				t.Fatalf("a policy-rc.d that was there: %q, %v; want it untouched", got, err)
			}
		})
	}
}

// Under a pre-existing policy that lets services start (exit 0), the
// installed Prometheus server is stopped and disabled.
func TestInstallPromtoolServerDisabled(t *testing.T) {
	t.Parallel()
	path, calls := fakeSystem(t, `exit 0`)
	policy := filepath.Join(t.TempDir(), "policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The installed promtool.
	if err := os.WriteFile(filepath.Join(path, "promtool"), []byte("#!/bin/sh\necho promtool 2.x\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(path, "promtool"), filepath.Join(path, "promtool.later")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "apt-get"),
		[]byte("#!/bin/sh\n[ \"$1\" = install ] && mv "+filepath.Join(path, "promtool.later")+" "+filepath.Join(path, "promtool")+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := runInstall(t, path, policy); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(calls)
	for _, want := range []string{"service prometheus stop", "update-rc.d prometheus disable", "systemctl disable prometheus"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("no %q; the calls:\n%s", want, log)
		}
	}
}
