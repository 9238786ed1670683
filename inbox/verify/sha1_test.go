package verify_test

import (
	"crypto/sha1" //nolint:gosec // Twilio's scheme
	"hash"
)

func sha1New() func() hash.Hash { return sha1.New }
