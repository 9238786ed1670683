// Package fixture has one undocumented identifier of each kind the doc
// check must name, beside documented ones of the same kinds.
package fixture

// Documented is documented.
const Documented = 1

const Bare = 2

// Modes share their group's comment.
const (
	ModeA = "a"
	ModeB = "b"
)

var Loose int

// Config has fields with and without comments.
type Config struct {
	// Timeout is documented above.
	Timeout int
	Retries int // documented on its line
	Name    string
	secret  string
	Nested  struct {
		// Inner is documented.
		Inner int
		Outer int
	}
	*Embedded
}

// Embedded is embedded without a comment.
type Embedded struct{}

type Naked struct{}

// Do is documented.
func (Config) Do() {}

func (*Config) Undo() {}

func (naked) Hidden() {} // a method of an unexported type is not API

type naked struct{}

// Sender has methods with and without comments.
type Sender interface {
	// Send is documented.
	Send() error
	Close() error
	Stringer // embedded interfaces have docs of their own
}

// Stringer is documented.
type Stringer interface{ String() string }

func New() {}
