package console_test

import (
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
