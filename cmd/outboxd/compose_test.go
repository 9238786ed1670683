package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

// No Docker engine runs here, so docker-compose.yml is checked against what
// the binaries accept: the services and their order, and every outboxd
// command line run through outboxd's own argument and config parsing (it
// must fail only for want of the database, not on a flag or the config).
func TestDockerComposeFile(t *testing.T) {
	root, _ := filepath.Abs("../..")
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postgres", "migrate", "outboxd", "crm", "downstream"} {
		if _, ok := cf.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	if c := cf.Services["outboxd"].DependsOn["migrate"].Condition; c != "service_completed_successfully" {
		t.Fatalf("outboxd must start after migrate completes, condition %q", c)
	}
	if c := cf.Services["migrate"].DependsOn["postgres"].Condition; c != "service_healthy" {
		t.Fatalf("migrate must wait for a healthy postgres, condition %q", c)
	}
	t.Chdir(root) // compose runs the commands from the source tree
	t.Setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=1")
	for name, svc := range cf.Services {
		cmd := svc.Command
		switch {
		case len(cmd) > 3 && cmd[2] == "./cmd/outboxd":
			if svc.Environment["DATABASE_URL"] == "" && !slices.Contains(cmd, "--config") {
				t.Errorf("%s: no database: neither DATABASE_URL nor a config file", name)
			}
			args := append(slices.Clone(cmd[3:]), "--database-url", os.Getenv("DATABASE_URL"), "--connect-timeout", "1s")
			r := runIn(args...)
			if r.code != 1 || !strings.Contains(r.stderr, "cannot connect") {
				t.Errorf("%s: outboxd %v: exit %d, %q; want only a connection failure", name, cmd[3:], r.code, r.stderr)
			}
		case len(cmd) > 3 && cmd[2] == "./examples/crm-deals":
			if !slices.Contains([]string{"serve", "downstream"}, cmd[3]) || len(cmd) != 6 || cmd[4] != "--listen" {
				t.Errorf("%s: crm-deals %v: want serve|downstream --listen ADDR", name, cmd[3:])
				continue
			}
			port := cmd[5][strings.LastIndex(cmd[5], ":")+1:]
			if !slices.Contains(svc.Ports, "127.0.0.1:"+port+":"+port) {
				t.Errorf("%s: listens on %s but publishes %v (want the host's loopback only)", name, port, svc.Ports)
			}
			if cmd[3] == "serve" && (!strings.Contains(svc.Environment["CRM_API_TOKEN"], "CRM_API_TOKEN") || svc.Environment["DATABASE_URL"] == "") {
				t.Errorf("%s: the CRM needs DATABASE_URL and CRM_API_TOKEN from the host, has %v", name, svc.Environment)
			}
		case name != "postgres":
			t.Errorf("%s: unexpected command %v", name, cmd)
		}
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: publishes %s on every interface", name, p)
			}
		}
	}
	cfg, err := loadConfig("deploy/compose/outboxd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for dest, dc := range cfg.Destinations {
		if !strings.HasPrefix(dc.URL, "http://downstream:8081/") {
			t.Errorf("destination %s goes to %s, not the compose downstream", dest, dc.URL)
		}
	}
}
