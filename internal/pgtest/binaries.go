package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// fromBinaries starts a throwaway cluster with initdb and postgres from the
// local installation. initdb refuses to run as root, so as root the cluster
// belongs to the postgres user (or nobody) and both programs run as it.
func fromBinaries(ctx context.Context) (*Server, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	return startCluster(ctx, bin)
}

// findBinDir finds the directory holding initdb and postgres: the newest
// Debian-style /usr/lib/postgresql/N/bin, else the one on PATH.
func findBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("initdb and postgres not found in /usr/lib/postgresql/*/bin or on PATH")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// cluster is a PostgreSQL cluster in a temporary directory.
type cluster struct {
	bin, dir, data string
	port           int
	cred           *syscall.Credential
	proc           *exec.Cmd
	log            *os.File
}

func startCluster(ctx context.Context, bin string) (*Server, error) {
	c, err := initCluster(ctx, bin)
	if err != nil {
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	return &Server{AdminURL: c.url(), Origin: "throwaway cluster from " + bin, dir: c.dir, cluster: c,
		close: func() error {
			c.stop()
			return os.RemoveAll(c.dir)
		}}, nil
}

func initCluster(ctx context.Context, bin string) (*cluster, error) {
	dir, err := os.MkdirTemp("", "outboxd-pg-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	fail := func(err error) (*cluster, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if c.cred, err = clusterOwner(); err != nil {
		return fail(err)
	}
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fail(fmt.Errorf("chown %s: %w", dir, err))
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	if c.port, err = freePort(); err != nil {
		return fail(err)
	}
	return c, nil
}

func (c *cluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// start runs postgres on the cluster's port and waits until it answers.
func (c *cluster) start(ctx context.Context) error {
	logFile, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	srv := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data,
		"-p", strconv.Itoa(c.port), "-k", c.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300")
	srv.Stdout, srv.Stderr = logFile, logFile
	// Own process group: a Ctrl-C to the test run must not skip our
	// orderly shutdown.
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	if err := srv.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	c.proc, c.log = srv, logFile
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ping(ctx, c.url())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
			c.stop()
			return fmt.Errorf("postgres did not accept connections: %w\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop shuts postgres down (fast shutdown: SIGINT) and waits for it.
func (c *cluster) stop() {
	if c.proc == nil {
		return
	}
	_ = c.proc.Process.Signal(syscall.SIGINT)
	// The exit status after SIGINT is of no interest.
	done := make(chan struct{})
	go func() { _ = c.proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.proc.Process.Kill()
		<-done
	}
	c.log.Close()
	c.proc, c.log = nil, nil
}

// crash stops postgres as a crash of the server would: an immediate
// shutdown (SIGQUIT), no checkpoint, and the WAL still in its buffers
// never written (what asynchronous commits of the last moment wrote).
func (c *cluster) crash() {
	if c.proc == nil {
		return
	}
	_ = c.proc.Process.Signal(syscall.SIGQUIT)
	_ = c.proc.Wait()
	c.log.Close()
	c.proc, c.log = nil, nil
}

// clusterOwner returns the credentials to run initdb and postgres with: nil
// when not root, else the postgres user's, else nobody's.
func clusterOwner() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and neither a postgres nor a nobody user exists to own the cluster")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
